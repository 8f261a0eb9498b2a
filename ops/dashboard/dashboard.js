/*
 * callsign dashboard: where the calls come from, who answers them, which ones are missed.
 *
 * One plain script: no modules, no build step, no dependencies. Every figure comes from the
 * admin API with the admin token, which is kept in sessionStorage so that it goes with the
 * tab. The live stream is read with fetch rather than EventSource, which cannot send the
 * token. All text from the API goes into the page through textContent, never as markup.
 */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const el = {
    signinView: $('signin-view'),
    signin: $('signin'),
    token: $('token'),
    open: $('open'),
    signinError: $('signin-error'),
    app: $('app'),
    range: $('range'),
    rangeLabel: $('range-label'),
    live: $('live'),
    liveText: $('live-text'),
    signOut: $('sign-out'),
    problem: $('problem'),
    totals: $('totals'),
    sources: $('sources').tBodies[0],
    heatmap: $('heatmap'),
    heatmapTz: $('heatmap-tz'),
    heatmapPeak: $('heatmap-peak'),
    agents: $('agents').tBodies[0],
    queues: $('queues'),
    calls: $('calls').tBodies[0],
    downloadCSV: $('download-csv'),
    exportAds: $('export-google-ads'),
  };

  const TOKEN_KEY = 'callsign.dashboard.token';
  const RANGE_KEY = 'callsign.dashboard.range';
  const CALLS_SHOWN = 25;
  const CALL_COLUMNS = 9;
  const AGENTS_EVERY_MS = 10000;
  const REFRESH_AFTER_MS = 1000;    // a burst of completed calls costs one round of reports
  // Reports over a month of a busy edge's calls cost it tens of ms each:
  // with calls ending every second, every open dashboard would keep a
  // core busy. The latest calls still update on each call.
  const REPORTS_EVERY_MS = 10000;
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  const STREAM_SILENT_MS = 45000;   // three keepalives missed: the connection is dead
  const STREAM_STEADY_MS = 5000;    // a stream that lasted this long was not refused
  const CLICK_IDS = ['gclid', 'gbraid', 'wbraid', 'fbclid', 'msclkid'];
  const DAY_ORDER = [1, 2, 3, 4, 5, 6, 0];   // Monday first; the API counts from Sunday
  const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const STATES = { available: 'Available', ringing: 'Ringing', busy: 'On a call', wrap_up: 'Wrap-up', away: 'Away' };
  const MISSED_REASONS = {
    caller_hangup: 'Caller hung up',
    no_agent: 'No agent available',
    ring_timeout: 'Nobody answered',
    after_hours: 'After hours',
    rejected: 'Rejected',
    error: 'Failed',
  };
  const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

  let token = '';
  let range = '7d';
  // Bumped on sign-out and on a change of range, so that answers to older requests are
  // dropped instead of overwriting newer ones.
  let generation = 0;
  let live = { agents: null, agentReport: null, calls: [] };
  let stream = null;                 // AbortController of the live stream, null when stopped
  let streamUp = false;              // the stream has connected at least once since sign-in
  let backoff = RECONNECT_MIN_MS;
  let player = null;                 // { callId, row, url } of the open recording
  const problems = new Map();        // what failed to load → why
  const timers = { reconnect: 0, refresh: 0, agents: 0 };
  let lastReports = 0;

  // ---------------------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------------------

  const count = new Intl.NumberFormat();
  const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
  const dayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

  // m:ss, or h:mm:ss from an hour on; a dash when unknown.
  function duration(ms) {
    if (ms == null || !isFinite(ms)) return '—';
    const s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  function rate(part, whole) {
    return whole > 0 ? percent.format(part / whole) : '—';
  }

  // Today's calls by their time only, this week's by weekday, older ones by date.
  function when(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '—';
    const today = startOfDay(new Date());
    if (d >= today) return timeFmt.format(d);
    if (d >= addDays(today, -6)) return weekdayFmt.format(d);
    return dateTimeFmt.format(d);
  }

  // Two-digit country calling codes; 1 and 7 are the one-digit ones, all others have three.
  const CC2 = new Set(('20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 ' +
    '58 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98').split(' '));

  // "+15551230000" → "+1 555 123 0000", "+34911234567" → "+34 911 234 567"; anything not
  // E.164 (an anonymous caller, an extension) is shown as it came.
  function phone(raw) {
    const m = /^\+(\d{6,15})$/.exec(String(raw || ''));
    if (!m) return String(raw || '');
    const d = m[1];
    if (d[0] === '1' && d.length === 11) return '+1 ' + d.slice(1, 4) + ' ' + d.slice(4, 7) + ' ' + d.slice(7);
    const cc = d[0] === '1' || d[0] === '7' ? 1 : CC2.has(d.slice(0, 2)) ? 2 : 3;
    const rest = d.slice(cc);
    const groups = [];
    let i = 0;
    while (rest.length - i > 4) { groups.push(rest.slice(i, i + 3)); i += 3; }
    groups.push(rest.slice(i));
    return '+' + d.slice(0, cc) + ' ' + groups.join(' ');
  }

  function startOfDay(d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()); }
  function addDays(d, n) { const c = new Date(d); c.setDate(c.getDate() + n); return c; }

  // RFC 3339 in UTC, without the milliseconds that not every parser takes.
  function rfc3339(d) { return d.toISOString().replace(/\.\d+Z$/, 'Z'); }

  // The period chosen, up to now: whole local days, today included.
  function period() {
    const to = new Date();
    const from = addDays(startOfDay(to), range === 'today' ? 0 : range === '30d' ? -29 : -6);
    return { from, to };
  }

  function query(extra) {
    const p = period();
    return new URLSearchParams(Object.assign({ from: rfc3339(p.from), to: rfc3339(p.to) }, extra)).toString();
  }

  // ---------------------------------------------------------------------------------------
  // DOM helpers
  // ---------------------------------------------------------------------------------------

  function h(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    return e;
  }

  function cell(text, className) { return h('td', className, text); }
  function num(n) { return cell(n == null ? '—' : count.format(n), 'n'); }
  function dash() { return h('span', 'none', '—'); }

  function emptyRow(tbody, columns, text, kind) {
    const td = cell(text, 'empty' + (kind ? ' ' + kind : ''));
    td.colSpan = columns;
    const tr = h('tr');
    tr.append(td);
    tbody.replaceChildren(tr);
  }

  function badge(state) {
    const b = h('span', 'badge badge-dot', STATES[state] || (state ? state.replace(/_/g, ' ') : 'Unknown'));
    b.dataset.state = state || 'unknown';
    return b;
  }

  // ---------------------------------------------------------------------------------------
  // The API
  // ---------------------------------------------------------------------------------------

  function auth() { return { Authorization: 'Bearer ' + token }; }

  // The error of a refused request, with the server's own words when it gave any.
  async function apiError(res) {
    let message = res.status + ' ' + res.statusText;
    try {
      const body = await res.json();
      if (body && body.error) message = body.error;
    } catch (e) { /* not JSON: keep the status line */ }
    const err = new Error(message);
    err.status = res.status;
    return err;
  }

  async function api(path) {
    const res = await fetch(path, { headers: auth(), cache: 'no-store' });
    if (!res.ok) throw await apiError(res);
    return res;
  }

  // Runs apply with the JSON answer, unless the range or the token changed meanwhile.
  function load(path, what, apply) {
    const gen = generation;
    return api(path).then((res) => res.json()).then((body) => {
      if (gen !== generation) return;
      apply(body || {});
      problems.delete(what);
      renderProblems();
    }).catch((err) => {
      if (gen === generation) failed(err, what);
    });
  }

  // A wrong token sends the user back to the form; anything else is said above the figures
  // and cleared by the next success.
  function failed(err, what) {
    if (err.status === 401) {
      signOut('Wrong admin token');
      return;
    }
    problems.set(what, err.status === 403 ? err.message : 'Could not load ' + what + ': ' + err.message);
    renderProblems();
    // A table that never got its figures must not look as if they were on their way.
    for (const td of el.app.querySelectorAll('td.loading')) {
      td.classList.remove('loading');
      td.textContent = 'Not available.';
    }
  }

  function renderProblems() {
    const texts = [...new Set(problems.values())];
    el.problem.textContent = texts.join(' · ');
    el.problem.hidden = texts.length === 0;
  }

  function loadCalls() {
    return load('/api/calls?' + query({ limit: String(CALLS_SHOWN) }), 'the calls', (body) => {
      live.calls = (body.calls || []).slice(0, CALLS_SHOWN);
      renderCalls();
    });
  }

  function loadReports() {
    load('/api/reports/sources?' + query(), 'the sources report', (body) => renderSources(body.sources || []));
    load('/api/reports/missed-by-hour?' + query({ tz: TZ }), 'the missed calls by hour', renderHeatmap);
    load('/api/reports/agents?' + query(), 'the agents report', (body) => {
      live.agentReport = body;
      renderAgents();
      renameAgents();
      renderQueues(body.queues || []);
    });
  }

  function loadAgents() {
    return load('/api/agents', 'the agents', (body) => {
      live.agents = body.agents || [];
      renderAgents();
      renameAgents();
    });
  }

  function refreshAll() {
    loadCalls();
    loadReports();
    loadAgents();
  }

  // A throttle, not a debounce: calls ending more often than the delay
  // must not put the reports off for ever.
  function scheduleRefresh() {
    if (timers.refresh) return;
    const wait = Math.max(REFRESH_AFTER_MS, lastReports + REPORTS_EVERY_MS - Date.now());
    timers.refresh = setTimeout(() => {
      timers.refresh = 0;
      lastReports = Date.now();
      loadReports();
      loadAgents();
    }, wait);
  }

  // Fetches with the token and hands the file to the browser as a download.
  async function download(path, fallbackName, what, button) {
    button.disabled = true;
    try {
      const res = await api(path);
      const m = /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') || '');
      save(await res.blob(), m ? m[1] : fallbackName);
      problems.delete(what);
      renderProblems();
    } catch (err) {
      failed(err, what);
    } finally {
      button.disabled = false;
    }
  }

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = h('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    // The download has taken its copy by then.
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  function periodFileName(prefix) {
    const p = period();
    const day = (d) => d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');
    return prefix + '-' + day(p.from) + '-to-' + day(p.to) + '.csv';
  }

  // ---------------------------------------------------------------------------------------
  // Totals and sources
  // ---------------------------------------------------------------------------------------

  function renderSources(sources) {
    const rows = sources.slice().sort((a, b) => (b.calls || 0) - (a.calls || 0));
    let calls = 0, answered = 0, missed = 0, firstTime = 0, talk = 0;
    for (const s of rows) {
      calls += s.calls || 0;
      answered += s.answered || 0;
      missed += s.missed || 0;
      firstTime += s.first_time_callers || 0;
      // The averages are over answered calls, so they weigh by them.
      talk += (s.avg_talk_ms || 0) * (s.answered || 0);
    }
    setTotal('calls', count.format(calls));
    setTotal('answered', count.format(answered));
    setTotal('missed', count.format(missed));
    setTotal('missed_rate', rate(missed, calls));
    setTotal('avg_talk', answered ? duration(talk / answered) : '—');
    setTotal('first_time_callers', count.format(firstTime));

    if (!rows.length) {
      emptyRow(el.sources, 9, 'No calls in this period.');
      return;
    }
    const most = Math.max(...rows.map((s) => s.calls || 0), 1);
    const overall = calls ? missed / calls : 0;
    el.sources.replaceChildren(...rows.map((s) => {
      const tr = h('tr');
      tr.dataset.source = s.source || '';
      tr.dataset.campaign = s.campaign || '';
      const source = h('td', 'strong', s.source || '(direct / none)');
      if (!s.source) source.className = 'none';
      const campaign = h('td');
      campaign.append(s.campaign ? s.campaign : dash());
      const missedRate = cell(rate(s.missed || 0, s.calls || 0), 'n');
      // Sources that miss more than the period as a whole are the ones to look at.
      if (s.calls && s.missed / s.calls > overall) {
        missedRate.classList.add('rate-high');
        missedRate.title = 'Above the ' + rate(missed, calls) + ' of all calls';
      }
      tr.append(source, campaign, num(s.calls), num(s.answered), num(s.missed),
        barCell(s.answered || 0, s.missed || 0, most), missedRate,
        cell(s.answered ? duration(s.avg_talk_ms) : '—', 'n'), num(s.first_time_callers));
      return tr;
    }));
  }

  function setTotal(name, text) {
    el.totals.querySelector('[data-total="' + name + '"] .stat-value').textContent = text;
  }

  // A bar as long as the row's share of the busiest row, green for answered, red for missed.
  // Widths are set through the style object, which the page's CSP allows (style attributes
  // in markup it does not).
  function barCell(answered, missed, most) {
    const td = h('td', 'bar-col');
    const bar = h('div', 'bar');
    bar.title = count.format(answered) + ' answered, ' + count.format(missed) + ' missed';
    bar.style.width = Math.max(2, ((answered + missed) / most) * 100) + '%';
    const a = h('span', 'bar-answered');
    const m = h('span', 'bar-missed');
    a.style.flexGrow = String(answered);
    m.style.flexGrow = String(missed);
    bar.append(a, m);
    td.append(bar);
    return td;
  }

  // ---------------------------------------------------------------------------------------
  // Missed calls by hour of week
  // ---------------------------------------------------------------------------------------

  function hourLabel(hour) { return String(hour).padStart(2, '0') + ':00'; }

  function renderHeatmap(body) {
    const grid = Array.isArray(body.missed) ? body.missed : [];
    const names = Array.isArray(body.days) && body.days.length === 7 ? body.days : DAY_NAMES;
    const at = (day, hour) => Number((grid[day] || [])[hour]) || 0;
    let most = 0, peak = null;
    for (let day = 0; day < 7; day++) {
      for (let hour = 0; hour < 24; hour++) {
        if (at(day, hour) > most) { most = at(day, hour); peak = { day, hour }; }
      }
    }

    const head = h('tr');
    head.append(h('th'));
    for (let hour = 0; hour < 24; hour++) {
      const th = h('th', null, hour % 3 === 0 ? String(hour).padStart(2, '0') : '');
      th.scope = 'col';
      head.append(th);
    }
    el.heatmap.tHead.replaceChildren(head);

    el.heatmap.tBodies[0].replaceChildren(...DAY_ORDER.map((day) => {
      const tr = h('tr');
      const th = h('th', null, names[day]);
      th.scope = 'row';
      tr.append(th);
      for (let hour = 0; hour < 24; hour++) {
        const n = at(day, hour);
        const td = h('td');
        td.dataset.day = String(day);
        td.dataset.hour = String(hour);
        td.dataset.count = String(n);
        // Four shades between the quietest and the busiest hour of the period.
        td.dataset.level = n ? String(Math.min(4, Math.ceil((n / most) * 4))) : '0';
        td.title = names[day] + ' ' + hourLabel(hour) + '–' + hourLabel(hour + 1) + ': ' + count.format(n) + ' missed';
        tr.append(td);
      }
      return tr;
    }));

    el.heatmapTz.textContent = 'Times in ' + (body.tz || TZ).replace(/_/g, ' ');
    el.heatmapPeak.textContent = peak
      ? 'Most missed: ' + names[peak.day] + ' ' + hourLabel(peak.hour) + '–' + hourLabel(peak.hour + 1) +
        ' (' + count.format(most) + ')'
      : 'No missed calls in this period.';
  }

  // ---------------------------------------------------------------------------------------
  // Agents
  // ---------------------------------------------------------------------------------------

  function agentName(id) {
    const a = (live.agents || []).find((x) => x.id === id);
    if (a && a.name) return a.name;
    const r = ((live.agentReport && live.agentReport.agents) || []).find((x) => x.agent === id);
    return (r && r.name) || id;
  }

  // The live list (every configured agent, in its order) with the period's figures; agents
  // that took calls in the period but are no longer configured follow.
  function renderAgents() {
    if (!live.agents && !live.agentReport) return;
    const report = new Map(((live.agentReport && live.agentReport.agents) || []).map((r) => [r.agent, r]));
    const rows = (live.agents || []).map((a) => ({ id: a.id, name: a.name, state: a.state, last: a.last_call_ended_at }));
    for (const id of report.keys()) {
      if (!rows.some((r) => r.id === id)) rows.push({ id, name: report.get(id).name, state: '' });
    }
    if (!rows.length) {
      emptyRow(el.agents, 6, 'No agents.');
      return;
    }
    el.agents.replaceChildren(...rows.map((a) => {
      const r = report.get(a.id) || {};
      const tr = h('tr');
      tr.dataset.agent = a.id;
      const who = h('td');
      who.append(h('span', 'strong', a.name || a.id));
      if (a.last) who.append(h('span', 'sub', 'Last call ended ' + when(a.last)));
      else if (a.name && a.name !== a.id) who.append(h('span', 'sub', a.id));
      const state = h('td');
      // Until the live list is in, there is no state to show.
      if (live.agents) state.append(badge(a.state));
      tr.append(who, state, num(r.offered || 0), num(r.answered || 0), num(r.missed || 0), cell(duration(r.talk_ms || 0), 'n'));
      return tr;
    }));
  }

  // The calls may have come before the agents' names did.
  function renameAgents() {
    for (const name of el.calls.querySelectorAll('[data-agent-id]')) name.textContent = agentName(name.dataset.agentId);
  }

  function renderQueues(queues) {
    el.queues.replaceChildren(...queues.map((q) => {
      const span = h('span', 'queue');
      span.dataset.queue = q.queue || '';
      span.append(h('b', null, q.queue || '(no queue)'), ' ' + count.format(q.calls || 0) + (q.calls === 1 ? ' call, ' : ' calls, ') +
        count.format(q.missed || 0) + ' missed (' + rate(q.missed || 0, q.calls || 0) + ')');
      return span;
    }));
  }

  // ---------------------------------------------------------------------------------------
  // Latest calls
  // ---------------------------------------------------------------------------------------

  function renderCalls(freshId) {
    if (!live.calls.length) {
      closePlayer();
      emptyRow(el.calls, CALL_COLUMNS, 'No calls in this period.');
      return;
    }
    const rows = [];
    for (const c of live.calls) {
      const tr = callRow(c);
      if (c.call_id === freshId) tr.classList.add('fresh');
      rows.push(tr);
      // An open recording keeps playing across updates of the list.
      if (player && player.callId === c.call_id) rows.push(player.row);
    }
    if (player && !rows.includes(player.row)) closePlayer();
    el.calls.replaceChildren(...rows);
  }

  function addCall(c) {
    live.calls = [c].concat(live.calls.filter((x) => x.call_id !== c.call_id)).slice(0, CALLS_SHOWN);
    renderCalls(c.call_id);
  }

  function clickId(visitor) {
    for (const k of CLICK_IDS) {
      if (visitor && visitor[k]) return k + ' ' + visitor[k];
    }
    return '';
  }

  function callRow(c) {
    const tr = h('tr');
    tr.dataset.callId = c.call_id || '';

    const time = cell(when(c.started_at), 'time');
    const started = new Date(c.started_at);
    if (!isNaN(started)) time.title = fullFmt.format(started);

    const caller = h('td');
    caller.append(h('span', 'phone', c.caller ? phone(c.caller) : 'Anonymous'));
    if (c.first_call) {
      const b = h('span', 'badge badge-new', 'new');
      b.title = 'First call from this number';
      caller.append(b);
    }
    if (c.caller_name) caller.append(h('span', 'sub', c.caller_name));
    if (c.tracking_number) caller.append(h('span', 'sub narrow-only', 'to ' + phone(c.tracking_number)));

    const called = h('td', 'called-col');
    called.append(c.tracking_number ? h('span', 'phone', phone(c.tracking_number)) : dash());
    if (c.pool) called.append(h('span', 'sub', c.pool));

    const source = h('td', 'source-cell');
    const channel = [c.source, c.medium].filter(Boolean).join(' / ');
    source.append(channel ? h('span', 'strong', channel) : h('span', 'none', '(direct / none)'));
    const campaign = [c.campaign, c.keyword ? '“' + c.keyword + '”' : ''].filter(Boolean).join(' · ');
    if (campaign) source.append(h('span', 'sub', campaign));
    const click = clickId(c.visitor);
    if (click) {
      const chip = h('span', 'chip', click);
      chip.title = click;
      source.append(chip);
    }

    const queue = h('td', 'queue-col');
    queue.append(c.queue || dash());
    const agent = h('td');
    if (c.agent) {
      const name = h('span', null, agentName(c.agent));
      name.dataset.agentId = c.agent;
      agent.append(name);
    } else agent.append(dash());
    if (c.queue) agent.append(h('span', 'sub narrow-only', c.queue));

    const outcome = h('td');
    if (c.outcome === 'answered') outcome.append(h('span', 'badge badge-answered', 'Answered'));
    else if (c.outcome === 'missed') {
      outcome.append(h('span', 'badge badge-missed', 'Missed'));
      if (c.missed_reason) outcome.append(h('span', 'sub', MISSED_REASONS[c.missed_reason] || c.missed_reason.replace(/_/g, ' ')));
    } else outcome.append(dash());

    const talk = cell(c.outcome === 'answered' ? duration(c.talk_ms) : '—', 'n');

    const rec = h('td');
    if (c.recording_url) {
      const box = h('div', 'rec');
      const play = h('button', 'link-button play', '▶ Play');
      play.type = 'button';
      if (player && player.callId === c.call_id) {
        play.textContent = '✕ Close';
        player.button = play;
      }
      play.addEventListener('click', () => togglePlayer(c, tr, play));
      const dl = h('button', 'link-button download', 'Download');
      dl.type = 'button';
      dl.addEventListener('click', () => download(c.recording_url, 'call-' + c.call_id + '.wav', 'the recording', dl));
      box.append(play, dl);
      rec.append(box);
    } else rec.append(dash());

    tr.append(time, caller, called, source, queue, agent, outcome, talk, rec);
    return tr;
  }

  // The recording is fetched with the token and played from memory: an <audio src> pointing
  // at the API could not send the token.
  async function togglePlayer(c, tr, button) {
    const same = player && player.callId === c.call_id;
    closePlayer();
    if (same) return;
    const td = h('td');
    td.colSpan = CALL_COLUMNS;
    const box = h('div', 'player');
    box.append(h('span', 'player-note', 'Loading the recording…'));
    td.append(box);
    const row = h('tr', 'player-row');
    row.append(td);
    tr.after(row);
    const p = { callId: c.call_id, row, url: '', button };
    player = p;
    button.textContent = '✕ Close';
    try {
      const blob = await (await api(c.recording_url)).blob();
      if (player !== p) return;
      p.url = URL.createObjectURL(blob);
      const audio = h('audio');
      audio.controls = true;
      audio.src = p.url;
      audio.title = 'Recording of the call from ' + (c.caller ? phone(c.caller) : 'an anonymous caller');
      box.replaceChildren(audio);
      audio.play().catch(() => { /* the controls are there to start it */ });
    } catch (err) {
      if (player !== p) return;
      if (err.status === 401) { failed(err, 'the recording'); return; }
      box.replaceChildren(h('span', 'player-error', 'Could not load the recording: ' + err.message));
    }
  }

  function closePlayer() {
    if (!player) return;
    const p = player;
    player = null;
    p.row.remove();
    if (p.url) URL.revokeObjectURL(p.url);
    p.button.textContent = '▶ Play';
  }

  // ---------------------------------------------------------------------------------------
  // The live stream
  // ---------------------------------------------------------------------------------------

  function setLive(state) {
    el.live.dataset.state = state;
    el.liveText.textContent = state === 'live' ? 'Live' : state === 'connecting' ? 'Connecting…' : 'Reconnecting…';
  }

  async function connectStream() {
    const ctl = new AbortController();
    stream = ctl;
    let opened = 0;
    try {
      const res = await fetch('/api/stream', { headers: auth(), signal: ctl.signal, cache: 'no-store' });
      if (!res.ok || !res.body) throw await apiError(res);
      if (stream !== ctl) return;
      opened = Date.now();
      setLive('live');
      problems.delete('the live stream');
      renderProblems();
      // Calls that ended while the stream was down are only in the reports.
      if (streamUp) refreshAll();
      streamUp = true;
      await readEvents(res.body, ctl);
    } catch (err) {
      if (stream !== ctl) return;
      if (err.status === 401) { failed(err, 'the live stream'); return; }
      if (err.status) failed(err, 'the live stream');
    }
    if (stream !== ctl) return;
    setLive('reconnecting');
    if (opened && Date.now() - opened > STREAM_STEADY_MS) backoff = RECONNECT_MIN_MS;
    timers.reconnect = setTimeout(connectStream, backoff);
    backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
  }

  function stopStream() {
    const ctl = stream;
    stream = null;
    clearTimeout(timers.reconnect);
    if (ctl) ctl.abort();
  }

  // Reads the stream until it ends, is stopped, or stays silent past the keepalives.
  async function readEvents(body, ctl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const event = { type: '', data: [] };
    let buffer = '';
    let silent = 0;
    const watch = () => {
      clearTimeout(silent);
      silent = setTimeout(() => ctl.abort(), STREAM_SILENT_MS);
    };
    watch();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stream !== ctl) return;
        watch();
        const lines = (buffer + value).split('\n');
        buffer = lines.pop();
        for (const line of lines) eventLine(line.replace(/\r$/, ''), event);
      }
    } finally {
      clearTimeout(silent);
    }
  }

  // One line of server-sent events: "field: value", a blank line ends the event, a line
  // starting with ":" is a comment (the keepalives).
  function eventLine(line, event) {
    if (line === '') {
      if (event.type || event.data.length) onEvent(event.type || 'message', event.data.join('\n'));
      event.type = '';
      event.data = [];
      return;
    }
    if (line[0] === ':') return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event.type = value;
    else if (field === 'data') event.data.push(value);
  }

  function onEvent(type, data) {
    if (type === 'call.completed') {
      let c = null;
      try { c = JSON.parse(data); } catch (e) { return; }
      if (c && !c.call_id && c.call) c = c.call;
      if (!c || !c.call_id) return;
      addCall(c);
      scheduleRefresh();
    } else if (type === 'resync') {
      refreshAll();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Range
  // ---------------------------------------------------------------------------------------

  function renderRange() {
    for (const b of el.range.querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(b.dataset.range === range));
    }
    const p = period();
    el.rangeLabel.textContent = range === 'today' ? dayFmt.format(p.to)
      : dayFmt.format(p.from) + ' – ' + dayFmt.format(p.to);
  }

  function setRange(r) {
    if (r === range) return;
    range = r;
    try { sessionStorage.setItem(RANGE_KEY, r); } catch (e) { /* private mode: not kept */ }
    generation++;
    renderRange();
    refreshAll();
  }

  // ---------------------------------------------------------------------------------------
  // Signing in and out
  // ---------------------------------------------------------------------------------------

  function clearFigures() {
    closePlayer();
    live = { agents: null, agentReport: null, calls: [] };
    for (const v of el.totals.querySelectorAll('.stat-value')) v.textContent = '–';
    emptyRow(el.sources, 9, 'Loading…', 'loading');
    emptyRow(el.agents, 6, 'Loading…', 'loading');
    emptyRow(el.calls, CALL_COLUMNS, 'Loading…', 'loading');
    el.heatmap.tHead.replaceChildren();
    el.heatmap.tBodies[0].replaceChildren();
    el.heatmapPeak.textContent = '';
    el.queues.replaceChildren();
    problems.clear();
    renderProblems();
  }

  function start() {
    generation++;
    clearFigures();
    el.signinView.hidden = true;
    el.app.hidden = false;
    renderRange();
    refreshAll();
    streamUp = false;
    backoff = RECONNECT_MIN_MS;
    setLive('connecting');
    connectStream();
    clearInterval(timers.agents);
    timers.agents = setInterval(loadAgents, AGENTS_EVERY_MS);
  }

  function signOut(message) {
    generation++;
    token = '';
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
    stopStream();
    clearInterval(timers.agents);
    clearTimeout(timers.refresh);
    timers.refresh = 0;
    clearFigures();
    el.app.hidden = true;
    el.signinView.hidden = false;
    el.signinError.textContent = message || '';
    el.token.value = '';
    el.token.setAttribute('aria-invalid', String(!!message));
    el.token.focus();
  }

  // The token is tried before the dashboard opens, so that a wrong one is said on the form.
  async function signIn(event) {
    event.preventDefault();
    const t = el.token.value.trim();
    if (!t) {
      el.signinError.textContent = 'Enter the admin token.';
      el.token.setAttribute('aria-invalid', 'true');
      el.token.focus();
      return;
    }
    el.open.disabled = true;
    el.signinError.textContent = '';
    token = t;
    try {
      await api('/api/agents');
    } catch (err) {
      token = '';
      el.signinError.textContent = err.status === 401 ? 'Wrong admin token'
        : err.status ? err.message : 'Cannot reach callsign: ' + err.message;
      el.token.setAttribute('aria-invalid', String(err.status === 401));
      el.token.select();
      return;
    } finally {
      el.open.disabled = false;
    }
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* kept for this page only */ }
    el.token.value = '';
    el.token.setAttribute('aria-invalid', 'false');
    start();
  }

  function init() {
    el.signin.addEventListener('submit', signIn);
    el.signOut.addEventListener('click', () => signOut(''));
    el.range.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-range]');
      if (b) setRange(b.dataset.range);
    });
    el.downloadCSV.addEventListener('click', () =>
      download('/api/calls?' + query({ format: 'csv' }), periodFileName('calls'), 'the CSV', el.downloadCSV));
    el.exportAds.addEventListener('click', () =>
      download('/api/exports/google-ads.csv?' + query(), periodFileName('google-ads'), 'the Google Ads export', el.exportAds));

    let stored = '';
    try {
      stored = sessionStorage.getItem(TOKEN_KEY) || '';
      const r = sessionStorage.getItem(RANGE_KEY);
      if (r === 'today' || r === '7d' || r === '30d') range = r;
    } catch (e) { /* no storage: sign in every time */ }
    if (stored) {
      token = stored;
      start();
    } else {
      signOut('');
    }
  }

  init();
})();
