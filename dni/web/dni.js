/* callsign dni.js: shows each web visitor a tracking number of its own.
 *
 * <script src="https://EDGE/dni.js" data-pool="website" async></script>
 *
 * Asks the edge for a number of the pool for this visit (its landing URL
 * whole, with the utm_* parameters and whichever click ids the edge is
 * configured to read, and its referrer), swaps the pool's default number
 * for it everywhere on the page (text in any common formatting, tel:
 * links, and content added later), and keeps the number held with a
 * heartbeat while the page is open. When the edge cannot be reached, the
 * page keeps the default number: nothing here may break it.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.__callsignDNI) return;
  window.__callsignDNI = true;

  var pool = script.getAttribute('data-pool') || '';
  var base = script.src.replace(/\/dni\.js(\?.*)?$/, '');
  var KEY = 'callsign_visitor';
  var state = { number: null, replace: null, timer: null, observer: null };

  function randomId() {
    var a = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(a);
    var s = '';
    for (var i = 0; i < a.length; i++) s += ('0' + a[i].toString(16)).slice(-2);
    return s;
  }

  // The visitor id is first-party (this site's storage), so the edge can
  // keep the visitor's number across pages; without storage the id lives
  // as long as the page.
  function visitorId() {
    var id = null;
    try {
      id = window.localStorage.getItem(KEY);
      if (!id) {
        id = randomId();
        window.localStorage.setItem(KEY, id);
      }
    } catch (e) {
      id = id || state.memoryId || (state.memoryId = randomId());
    }
    return id;
  }

  function post(path, body, done) {
    try {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', base + path, true);
      // text/plain keeps the request simple: no CORS preflight.
      xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
      xhr.timeout = 5000;
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        done(xhr.status, data);
      };
      xhr.onerror = xhr.ontimeout = function () { done(0, null); };
      xhr.send(JSON.stringify(body));
    } catch (e) {
      done(0, null);
    }
  }

  function digits(s) { return String(s).replace(/\D/g, ''); }

  // A pattern for a number written in any common way: its digits with
  // spaces, dots, dashes or parentheses between, with or without the
  // country code.
  function pattern(number) {
    var d = digits(number);
    var forms = [d];
    if (d.length > 10) forms.push(d.slice(d.length - 10));
    var alts = forms.map(function (f) {
      return f.split('').join('[\\s.\\-()\\u00a0]*');
    });
    return new RegExp('\\+?\\(?(?:' + alts.join('|') + ')(?!\\d)', 'g');
  }

  // The shown text keeps the site's formatting: the digits of the match
  // are replaced from the right by those of the new number.
  function reformat(text, number) {
    var nd = digits(number);
    var out = text.split('');
    var j = nd.length - 1;
    for (var i = out.length - 1; i >= 0; i--) {
      if (/\d/.test(out[i])) {
        out[i] = j >= 0 ? nd[j] : out[i];
        j--;
      }
    }
    return out.join('');
  }

  function swapText(node, re, number) {
    var text = node.nodeValue;
    re.lastIndex = 0;
    if (!re.test(text)) return;
    re.lastIndex = 0;
    node.nodeValue = text.replace(re, function (m) { return reformat(m, number); });
  }

  function swapLink(a, re, number) {
    var href = a.getAttribute('href') || '';
    if (!/^tel:/i.test(href)) return;
    re.lastIndex = 0;
    if (re.test(decodeURIComponent(href.slice(4)))) {
      a.setAttribute('href', 'tel:' + (number.charAt(0) === '+' ? number : '+' + digits(number)));
    }
  }

  function swap(root, re, number) {
    if (!root) return;
    if (root.nodeType === 3) {
      swapText(root, re, number);
      return;
    }
    if (root.nodeType !== 1 && root.nodeType !== 9 && root.nodeType !== 11) return;
    if (root.nodeType === 1) {
      var tag = root.nodeName;
      if (tag === 'SCRIPT' || tag === 'STYLE' || tag === 'TEXTAREA' || tag === 'INPUT') return;
      if (tag === 'A') swapLink(root, re, number);
    }
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT, {
      acceptNode: function (n) {
        if (n.nodeType === 1) {
          var t = n.nodeName;
          return t === 'SCRIPT' || t === 'STYLE' || t === 'TEXTAREA' ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_SKIP;
        }
        return NodeFilter.FILTER_ACCEPT;
      }
    });
    var texts = [];
    for (var n = walker.nextNode(); n; n = walker.nextNode()) texts.push(n);
    for (var i = 0; i < texts.length; i++) swapText(texts[i], re, number);
    var links = root.querySelectorAll ? root.querySelectorAll('a[href^="tel:"], a[href^="TEL:"]') : [];
    for (var k = 0; k < links.length; k++) swapLink(links[k], re, number);
  }

  // show puts number where the page shows `from` (the default number,
  // or a number of this visit the edge has since let go).
  function show(from, number) {
    swap(document.body, pattern(from), number);
    // Content added later (popups, lazy sections) is swapped as it comes.
    if (!state.observer && window.MutationObserver) {
      state.observer = new MutationObserver(function (records) {
        var re = pattern(state.replace);
        for (var i = 0; i < records.length; i++) {
          var r = records[i];
          if (r.type === 'characterData') {
            swapText(r.target, re, state.number);
          } else {
            for (var j = 0; j < r.addedNodes.length; j++) swap(r.addedNodes[j], re, state.number);
          }
        }
      });
      state.observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    }
  }

  function heartbeat(every) {
    if (state.timer) clearInterval(state.timer);
    state.timer = setInterval(function () {
      if (document.visibilityState === 'hidden') return;
      post('/dni/v1/heartbeat', { pool: pool, visitor: visitorId() }, function (status) {
        // The edge let the number go (a long sleep): ask again.
        if (status === 404) start();
      });
    }, every);
  }

  function start() {
    post('/dni/v1/session', {
      pool: pool,
      visitor: visitorId(),
      // Whole: which parameters count is the edge's configuration.
      landing: location.href,
      referrer: document.referrer || ''
    }, function (status, data) {
      if (status !== 200 || !data || !data.number || !data.replace) return;
      var shown = state.number || data.replace;
      state.number = data.number;
      state.replace = data.replace;
      try {
        if (digits(shown) !== digits(data.number)) show(shown, data.number);
      } catch (e) { /* the page keeps the number it shows */ }
      heartbeat(Math.max(5000, data.heartbeat_ms || 30000));
    });
  }

  function whenReady(f) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', f);
    else f();
  }

  if (!pool) return;
  whenReady(start);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible' && state.number) {
      post('/dni/v1/heartbeat', { pool: pool, visitor: visitorId() }, function (status) {
        if (status === 404) start();
      });
    }
  });
})();
