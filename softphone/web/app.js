/*
 * callsign agent softphone.
 *
 * One plain script (no modules, no build step, no dependencies). It speaks the softphone
 * signaling protocol (docs/softphone-protocol.md) over a WebSocket at ./ws and carries the
 * call's audio over WebRTC. State lives in a handful of variables below; render() derives
 * everything visible from them, so handlers only change state and call render().
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------------------------------
  // Elements
  // ---------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const el = {
    loginView: $('login-view'),
    login: $('login'),
    agent: $('agent'),
    token: $('token'),
    loginButton: $('login-button'),
    loginError: $('login-error'),
    app: $('app'),
    agentName: $('agent-name'),
    agentAvatar: $('agent-avatar'),
    presence: $('presence'),
    status: $('status'),
    logout: $('logout'),
    connection: $('connection'),
    connectionText: $('connection-text'),
    connectionCountdown: $('connection-countdown'),
    reconnectNow: $('reconnect-now'),
    callEnded: $('call-ended'),
    idle: $('idle'),
    idleTitle: $('idle-title'),
    idleText: $('idle-text'),
    goAvailable: $('go-available'),
    incoming: $('incoming'),
    ringLeftWrap: $('ring-left-wrap'),
    ringLeft: $('ring-left'),
    ringBar: $('ring-bar'),
    waited: $('waited'),
    answer: $('answer'),
    decline: $('decline'),
    inCall: $('in-call'),
    callState: $('call-state'),
    callStateText: $('call-state-text'),
    timer: $('timer'),
    mute: $('mute'),
    mutedFlag: $('muted-flag'),
    hangup: $('hangup'),
    keypad: $('keypad'),
    digitsSent: $('digits-sent'),
    notice: $('notice'),
    announcer: $('announcer'),
    remoteAudio: $('remote-audio'),
  };

  const AGENT_KEY = 'callsign.softphone.agent';
  const BASE_TITLE = document.title;
  const ICE_GATHER_CAP_MS = 2000;   // the answer goes out after gathering or this long, whichever first
  const LOGIN_TIMEOUT_MS = 10000;   // a socket that has not been welcomed by then is given up
  const PING_EVERY_MS = 15000;      // application pings: the browser hides the edge's ping frames
  const PONG_WITHIN_MS = 10000;
  const ENDED_SHOWN_MS = 6000;
  const RECONNECT_MAX_MS = 30000;

  // ---------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------

  let ws = null;              // the current WebSocket, or null
  let agentId = '';
  let token = '';             // held in memory only, for reconnecting; never stored
  let welcomed = false;       // the current socket got `welcome`
  let everWelcomed = false;   // this login session got `welcome` at least once (so drops reconnect)
  let stopped = true;         // no reconnecting: logged out, refused, replaced
  let reconnectAttempt = 0;
  let reconnectAt = 0;
  let agentName = '';
  let serverPresence = 'away';   // available | away | busy, as the edge last said
  let chosenPresence = 'away';   // available | away, the agent's own choice
  let wasAvailableBeforeDrop = false;
  let choosingPresence = false;  // waiting for the microphone before going Available

  // The call offered to or held by this agent (the edge never offers two at once):
  // { id, offer, receivedAt, state: 'ringing'|'connecting'|'active', pc, answerSent,
  //   endOfCandidatesSent, answeredAt, digits, muted }
  let call = null;

  let micStream = null;
  let micPending = null;
  let audioCtx = null;
  let ringNodes = null;

  const timers = { reconnect: 0, countdown: 0, login: 0, ping: 0, ring: 0, title: 0, callClock: 0, ended: 0 };
  let pingSentAt = 0;
  let lastMessageAt = 0;

  // Client message ids, so that an `error` (which echoes the id as `ref`) can be tied back to
  // the message that caused it.
  let messageSeq = 0;
  const sentById = new Map();

  // ---------------------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------------------

  // Two-digit country calling codes; 1 and 7 are the one-digit ones, everything else has three.
  const CC2 = new Set(('20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 ' +
    '58 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98').split(' '));

  // "+15551230000" → "+1 555 123 0000"; "+442079460958" → "+44 207 946 0958". Anything that is
  // not E.164 (an anonymous caller, say) is shown as it came.
  function formatNumber(raw) {
    if (!raw) return '';
    const m = /^\+(\d{6,15})$/.exec(String(raw).replace(/[\s().-]/g, ''));
    if (!m) return String(raw);
    const d = m[1];
    if (d[0] === '1' && d.length === 11) {
      return '+1 ' + d.slice(1, 4) + ' ' + d.slice(4, 7) + ' ' + d.slice(7);
    }
    const ccLen = d[0] === '1' || d[0] === '7' ? 1 : CC2.has(d.slice(0, 2)) ? 2 : 3;
    const rest = d.slice(ccLen);
    const groups = [];
    let i = 0;
    // Groups of three, with a final group of four rather than a lonely digit.
    while (rest.length - i > 4) { groups.push(rest.slice(i, i + 3)); i += 3; }
    groups.push(rest.slice(i));
    return '+' + d.slice(0, ccLen) + ' ' + groups.join(' ');
  }

  // m:ss (or h:mm:ss) for waiting times.
  function formatWait(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  // mm:ss for the call timer; minutes keep counting past 59.
  function formatClock(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    return String(Math.floor(s / 60)).padStart(2, '0') + ':' + String(s % 60).padStart(2, '0');
  }

  function initials(name) {
    const parts = String(name || '').trim().split(/\s+/).filter(Boolean);
    if (!parts.length) return '?';
    return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
  }

  function callerLabel(offer) {
    return offer.caller_name || formatNumber(offer.caller) || 'Unknown caller';
  }

  // ---------------------------------------------------------------------------------------
  // Notices and announcements
  // ---------------------------------------------------------------------------------------

  // Non-blocking notices in #notice (an aria-live region). Errors and warnings stay longer;
  // sticky ones stay until dismissed because the agent has to act on them.
  function notify(text, opts) {
    const o = Object.assign({ kind: 'info', sticky: false, timeout: 7000 }, opts);
    const item = document.createElement('div');
    item.className = 'notice notice-' + o.kind;
    const p = document.createElement('p');
    p.textContent = text;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'btn notice-close';
    close.setAttribute('aria-label', 'Dismiss notice');
    close.textContent = '×';
    close.addEventListener('click', () => item.remove());
    item.append(p, close);
    el.notice.append(item);
    // A pile of stale notices helps nobody.
    while (el.notice.children.length > 4) el.notice.firstElementChild.remove();
    if (!o.sticky) {
      setTimeout(() => item.remove(), o.kind === 'error' ? Math.max(o.timeout, 10000) : o.timeout);
    }
    return item;
  }

  // Screen-reader-only announcement; the text is cleared first so repeats are announced too.
  function announce(text) {
    el.announcer.textContent = '';
    setTimeout(() => { el.announcer.textContent = text; }, 50);
  }

  // ---------------------------------------------------------------------------------------
  // Sound: ring tone and key feedback, made with WebAudio (no audio files)
  // ---------------------------------------------------------------------------------------

  // Browsers only let an AudioContext make sound after a user gesture, so it is created on the
  // login click and resumed on any later interaction.
  function unlockAudio() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    if (!audioCtx) {
      try { audioCtx = new AC(); } catch (e) { return; }
    }
    if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
  }

  // North American ring: 440 + 480 Hz, 2 s on, 4 s off. The whole cadence is scheduled on the
  // audio clock up front, so it keeps time even when timers of a background tab are throttled.
  function startRinging() {
    stopRinging();
    if (!audioCtx) return;
    if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    const ctx = audioCtx;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscs = [440, 480].map((f) => {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      return o;
    });
    const t0 = ctx.currentTime + 0.05;
    const level = 0.09;
    for (let i = 0; i < 100; i++) {       // 10 minutes: longer than any ring
      const t = t0 + i * 6;
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(level, t + 0.03);   // short ramps avoid clicks
      gain.gain.setValueAtTime(level, t + 1.97);
      gain.gain.linearRampToValueAtTime(0, t + 2);
    }
    oscs.forEach((o) => o.start(t0));
    ringNodes = { gain, oscs };
  }

  function stopRinging() {
    if (!ringNodes) return;
    const { gain, oscs } = ringNodes;
    ringNodes = null;
    oscs.forEach((o) => { try { o.stop(); } catch (e) { /* not started yet */ } });
    gain.disconnect();
  }

  // A short, quiet local tone for each key, like a desk phone; the caller gets the real
  // telephone-event from the edge.
  const DTMF = {
    1: [697, 1209], 2: [697, 1336], 3: [697, 1477], 4: [770, 1209], 5: [770, 1336], 6: [770, 1477],
    7: [852, 1209], 8: [852, 1336], 9: [852, 1477], '*': [941, 1209], 0: [941, 1336], '#': [941, 1477],
  };
  function keyTone(digit) {
    if (!audioCtx || audioCtx.state !== 'running' || !DTMF[digit]) return;
    const ctx = audioCtx;
    const gain = ctx.createGain();
    const t = ctx.currentTime;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.05, t + 0.01);
    gain.gain.setValueAtTime(0.05, t + 0.11);
    gain.gain.linearRampToValueAtTime(0, t + 0.12);
    gain.connect(ctx.destination);
    DTMF[digit].forEach((f) => {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      o.start(t);
      o.stop(t + 0.13);
    });
    setTimeout(() => gain.disconnect(), 300);
  }

  // ---------------------------------------------------------------------------------------
  // Title flashing while a call rings, for agents looking at another tab
  // ---------------------------------------------------------------------------------------

  function startTitleFlash(who) {
    stopTitleFlash();
    let on = true;
    document.title = 'Incoming call';
    timers.title = setInterval(() => {
      on = !on;
      document.title = on ? 'Incoming call' : '☎ ' + who;
    }, 1000);
  }

  function stopTitleFlash() {
    clearInterval(timers.title);
    timers.title = 0;
    document.title = agentName ? agentName + ' · ' + BASE_TITLE : BASE_TITLE;
  }

  // ---------------------------------------------------------------------------------------
  // Microphone
  // ---------------------------------------------------------------------------------------

  function micLive() {
    return !!micStream && micStream.getAudioTracks().some((t) => t.readyState === 'live');
  }

  // Resolves with a live microphone stream, asking for it once; the same stream serves every call.
  function ensureMic() {
    if (micLive()) return Promise.resolve(micStream);
    if (micPending) return micPending;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const err = new Error('no getUserMedia');
      err.name = window.isSecureContext === false ? 'InsecureContext' : 'NotSupportedError';
      return Promise.reject(err);
    }
    micPending = navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    }).then((stream) => {
      micStream = stream;
      stream.getAudioTracks().forEach((t) => t.addEventListener('ended', onMicEnded));
      return stream;
    }).finally(() => { micPending = null; });
    return micPending;
  }

  function releaseMic() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    micStream = null;
  }

  function micErrorText(err) {
    switch (err && err.name) {
      case 'NotAllowedError':
      case 'PermissionDeniedError':
        return 'Microphone access was refused, so you stay Away. Allow the microphone for this ' +
          'site (the icon in the address bar), then choose Available again.';
      case 'NotFoundError':
      case 'DevicesNotFoundError':
        return 'No microphone was found, so you stay Away. Connect a headset and choose Available again.';
      case 'NotReadableError':
      case 'TrackStartError':
        return 'The microphone could not be opened (another application may be using it), so you stay Away.';
      case 'InsecureContext':
        return 'The microphone needs a secure (HTTPS) connection to this page, so you stay Away.';
      case 'NotSupportedError':
        return 'This browser cannot use a microphone here, so you stay Away.';
      default:
        return 'The microphone is not available (' + ((err && err.message) || 'unknown error') +
          '), so you stay Away.';
    }
  }

  // A headset unplugged while available would leave the agent receiving calls they cannot answer.
  function onMicEnded() {
    if (micLive()) return;
    micStream = null;
    if (call && call.state !== 'ringing') {
      notify('The microphone stopped. The caller cannot hear you; check your headset.', { kind: 'error', sticky: true });
      return;
    }
    if (chosenPresence === 'available') {
      setPresence('away');
      notify('The microphone was disconnected, so you are now Away.', { kind: 'warn', sticky: true });
    }
  }

  // ---------------------------------------------------------------------------------------
  // WebSocket
  // ---------------------------------------------------------------------------------------

  function wsURL() {
    const url = new URL('ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    return url.href;
  }

  function socketOpen() {
    return !!ws && ws.readyState === WebSocket.OPEN;
  }

  // Sends one message with a fresh id; false when there is no open socket.
  function send(msg) {
    if (!socketOpen()) return false;
    const id = 'm' + (++messageSeq);
    const out = Object.assign({ type: msg.type, id }, msg);
    sentById.set(id, out);
    if (sentById.size > 200) sentById.delete(sentById.keys().next().value);
    try {
      ws.send(JSON.stringify(out));
    } catch (e) {
      return false;
    }
    return true;
  }

  function connect() {
    clearTimeout(timers.reconnect);
    clearInterval(timers.countdown);
    timers.reconnect = timers.countdown = 0;
    welcomed = false;
    let sock;
    try {
      sock = new WebSocket(wsURL());
    } catch (e) {
      socketGone(null, 0);
      return;
    }
    ws = sock;
    sock.addEventListener('open', () => {
      if (sock !== ws) return;
      send({ type: 'login', agent: agentId, token: token });
    });
    sock.addEventListener('message', (ev) => {
      if (sock !== ws) return;
      lastMessageAt = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && typeof msg.type === 'string') handle(msg);
    });
    sock.addEventListener('close', (ev) => {
      if (sock !== ws) return;
      socketGone(sock, ev.code);
    });
    // 'error' is always followed by 'close', which does the work.

    clearTimeout(timers.login);
    timers.login = setTimeout(() => {
      if (sock === ws && !welcomed) abandonSocket();
    }, LOGIN_TIMEOUT_MS);
  }

  // Gives up on the current socket at once: a dead connection can take minutes to report its
  // close, and the agent should not wait for that.
  function abandonSocket() {
    const sock = ws;
    if (!sock) return;
    ws = null;
    try { sock.close(); } catch (e) { /* already closing */ }
    socketGone(sock, 0);
  }

  function socketGone(sock, code) {
    if (sock && sock === ws) ws = null;
    const wasWelcomed = welcomed;
    welcomed = false;
    clearTimeout(timers.login);
    clearInterval(timers.ping);
    timers.login = timers.ping = 0;
    if (stopped) return;

    // Close codes of a refused or ended session, in case its error message did not arrive.
    if (code === 4001) { endSession('Unknown agent or wrong token.'); return; }
    if (code === 4002) { endSession('This session was ended by the server. Log in again to continue.'); return; }

    if (!everWelcomed) {
      // The very first login never got through: stay on the form and say so.
      setLoginBusy(false);
      stopped = true;
      showLoginError('Could not connect to the softphone service. Check your network connection and try again.');
      return;
    }

    if (wasWelcomed) wasAvailableBeforeDrop = chosenPresence === 'available';

    // A ringing call moves on to the next agent when the socket drops, and so does one the agent
    // answered whose audio had not connected yet. An answered call keeps its audio, which does not
    // depend on the socket, so it stays on screen.
    if (call && call.state === 'ringing') {
      endCall('Missed — the connection dropped while the call was ringing', 'missed');
    } else if (call && call.state === 'connecting') {
      endCall('Audio could not connect — the connection to the server dropped', 'problem');
    }
    scheduleReconnect();
    render();
  }

  function scheduleReconnect() {
    // 1, 2, 4, 8, 16, 30 s, with jitter so that a room of agents does not reconnect in step.
    const base = Math.min(RECONNECT_MAX_MS, 1000 * Math.pow(2, reconnectAttempt));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    reconnectAttempt++;
    reconnectAt = Date.now() + delay;
    clearTimeout(timers.reconnect);
    timers.reconnect = setTimeout(connect, delay);
    clearInterval(timers.countdown);
    timers.countdown = setInterval(renderCountdown, 500);
    renderCountdown();
  }

  function reconnectNow() {
    if (stopped || ws) return;
    reconnectAttempt = 0;
    connect();
    render();
  }

  // Application-level keepalive. A ping goes out every PING_EVERY_MS; if the previous one has
  // had no answer (no message at all) for PONG_WITHIN_MS, the connection is considered dead.
  function startPing() {
    clearInterval(timers.ping);
    pingSentAt = 0;
    timers.ping = setInterval(() => {
      if (!socketOpen()) return;
      if (pingSentAt && lastMessageAt < pingSentAt && Date.now() - pingSentAt > PONG_WITHIN_MS) {
        abandonSocket();
        return;
      }
      pingSentAt = Date.now();
      send({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  // Ends the session for good (refused login, replaced, logged out, or the agent logged out):
  // no reconnecting, no call, no microphone, and back to the login form.
  function endSession(message) {
    stopped = true;
    everWelcomed = false;
    token = '';
    const sock = ws;
    ws = null;
    if (sock) { try { sock.close(); } catch (e) { /* closing anyway */ } }
    Object.keys(timers).forEach((k) => { clearTimeout(timers[k]); clearInterval(timers[k]); timers[k] = 0; });
    if (call) endCall(null);
    stopRinging();
    stopTitleFlash();
    releaseMic();
    el.callEnded.textContent = '';
    serverPresence = chosenPresence = 'away';
    el.app.hidden = true;
    el.loginView.hidden = false;
    el.token.value = '';
    setLoginBusy(false);
    showLoginError(message || '');
    document.title = BASE_TITLE;
    (el.agent.value ? el.token : el.agent).focus();
  }

  // ---------------------------------------------------------------------------------------
  // Messages from the edge
  // ---------------------------------------------------------------------------------------

  function handle(msg) {
    switch (msg.type) {
      case 'welcome': onWelcome(msg); break;
      case 'presence': onPresence(msg); break;
      case 'call.offered': if (welcomed) onOffered(msg); break;
      case 'call.answered': onAnswered(msg); break;
      case 'call.ended': onEnded(msg); break;
      case 'error': onError(msg); break;
      case 'pong': break;
      default: break;   // newer message types are ignored, like unknown fields
    }
  }

  function onWelcome(msg) {
    const reconnected = everWelcomed;
    welcomed = true;
    everWelcomed = true;
    reconnectAttempt = 0;
    clearTimeout(timers.login);
    clearInterval(timers.countdown);
    timers.countdown = 0;
    startPing();

    agentName = msg.name || msg.agent || agentId;
    el.agentName.textContent = agentName;
    el.agentAvatar.textContent = initials(agentName);
    document.title = agentName + ' · ' + BASE_TITLE;
    el.token.value = '';   // the token lives on in memory only, for reconnecting

    applyPresence(msg.presence);

    if (!reconnected) {
      el.loginView.hidden = true;
      el.app.hidden = false;
      setLoginBusy(false);
      showLoginError('');
      el.idleTitle.focus();
    } else if (wasAvailableBeforeDrop && chosenPresence === 'away' && serverPresence !== 'busy') {
      notify('Reconnected. You were offline for a while, so you are now Away.', { kind: 'warn', sticky: true });
    } else {
      notify('Reconnected.', { kind: 'ok', timeout: 4000 });
    }
    wasAvailableBeforeDrop = false;

    // Restored as available (a reload within the grace period) without a microphone yet: get it
    // now, or step back to Away rather than be offered calls that cannot be answered.
    if (chosenPresence === 'available' && !micLive()) {
      ensureMic().catch((err) => {
        setPresence('away');
        notify(micErrorText(err), { kind: 'error', sticky: true });
      });
    }
    render();
  }

  function applyPresence(status) {
    if (status === 'available' || status === 'away') {
      serverPresence = status;
      chosenPresence = status;
    } else if (status === 'busy') {
      serverPresence = 'busy';
    }
  }

  function onPresence(msg) {
    applyPresence(msg.status);
    render();
  }

  function onOffered(msg) {
    if (!msg.call_id || typeof msg.sdp !== 'string') return;
    if (call && call.id === msg.call_id) return;
    if (call) {
      if (call.state === 'ringing') {
        endCall(null);          // the edge has moved on from the earlier offer
      } else {
        // Never expected (the edge offers one call at a time); keep the call in progress.
        send({ type: 'decline', call_id: msg.call_id });
        return;
      }
    }
    clearEnded();
    call = {
      id: msg.call_id,
      offer: msg,
      receivedAt: Date.now(),
      state: 'ringing',
      pc: null,
      answerSent: false,
      endOfCandidatesSent: false,
      answeredAt: 0,
      digits: '',
      muted: false,
    };
    fillDetails(el.incoming, msg);
    fillDetails(el.inCall, msg);
    el.digitsSent.textContent = '';
    setMuted(false);

    startRinging();
    startTitleFlash(callerLabel(msg));
    clearInterval(timers.ring);
    timers.ring = setInterval(renderRingClock, 500);
    renderRingClock();
    announce('Incoming call from ' + callerLabel(msg) + (msg.source ? ', ' + msg.source : ''));
    render();
  }

  function onAnswered(msg) {
    if (!call || call.id !== msg.call_id || call.state === 'active') return;
    call.state = 'active';
    call.answeredAt = Date.now();
    clearInterval(timers.callClock);
    timers.callClock = setInterval(renderCallClock, 500);
    renderCallClock();
    announce('Connected to ' + callerLabel(call.offer));
    render();
  }

  const ENDED_TEXT = {
    cancelled: ['Missed — the call stopped ringing', 'missed'],
    declined: ['Call declined', 'done'],
    agent_hangup: ['Call ended', 'done'],
    remote_hangup: ['The caller hung up', 'done'],
    media_failed: ['Audio could not connect', 'problem'],
  };

  function onEnded(msg) {
    if (!call || call.id !== msg.call_id) return;
    const [text, kind] = ENDED_TEXT[msg.reason] || ['Call ended', 'done'];
    endCall(text, kind);
  }

  function onError(msg) {
    const code = msg.code || '';
    const text = msg.message || ('The server reported an error (' + (code || 'unknown') + ').');
    const ref = msg.ref ? sentById.get(msg.ref) : null;

    if (code === 'bad_login' || code === 'replaced' || code === 'logged_out') {
      let shown = text;
      if (code === 'replaced') shown = text + ' Log in again here to take the calls in this window.';
      endSession(shown);
      return;
    }

    // A call this page still shows but the edge no longer knows (it ended while we were not
    // listening): clean it up quietly instead of leaving a dead call on screen.
    if (code === 'unknown_call') {
      if (ref && ref.call_id && call && call.id === ref.call_id) {
        endCall('The call is no longer available', 'missed');
        return;
      }
      if (ref && ref.call_id) return;   // about a call already gone from the screen: nothing to say
    }

    if (code === 'bad_sdp' && ref && ref.type === 'answer') {
      notify('Audio for this call could not be set up: ' + text, { kind: 'error' });
      return;
    }
    if (code === 'bad_digits') {
      notify('Those keys could not be sent: ' + text, { kind: 'error' });
      return;
    }
    notify(text, { kind: 'error' });
  }

  // ---------------------------------------------------------------------------------------
  // Agent actions
  // ---------------------------------------------------------------------------------------

  function setPresence(status) {
    chosenPresence = status;
    el.presence.value = status;
    send({ type: 'presence', status: status });
    render();
  }

  // Going Available needs the microphone first: being offered calls without one is pointless.
  function choosePresence(want) {
    if (want !== 'available') {
      setPresence('away');
      return;
    }
    unlockAudio();
    choosingPresence = true;
    render();
    ensureMic().then(() => {
      choosingPresence = false;
      if (!socketOpen()) {
        notify('Not connected to the server; try again once it reconnects.', { kind: 'warn' });
        return;
      }
      setPresence('available');
    }, (err) => {
      choosingPresence = false;
      notify(micErrorText(err), { kind: 'error', sticky: true });
    }).finally(render);
  }

  async function answerCall() {
    const c = call;
    if (!c || c.state !== 'ringing') return;
    unlockAudio();
    if (typeof RTCPeerConnection !== 'function') {
      notify('This browser cannot take calls (WebRTC is not available).', { kind: 'error', sticky: true });
      return;
    }
    c.state = 'connecting';
    stopRinging();
    stopTitleFlash();
    render();
    el.callState.focus();

    let stream;
    try {
      stream = await ensureMic();
    } catch (err) {
      if (call !== c) return;
      // Without a microphone the call cannot be taken; let it keep ringing so the agent can
      // fix the microphone or decline.
      notify(micErrorText(err).replace(', so you stay Away', ''), { kind: 'error', sticky: true });
      c.state = 'ringing';
      startRinging();
      startTitleFlash(callerLabel(c.offer));
      render();
      return;
    }
    if (call !== c) return;

    try {
      const pc = new RTCPeerConnection({});
      c.pc = pc;
      pc.addEventListener('track', (ev) => {
        if (call !== c) return;
        el.remoteAudio.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
        el.remoteAudio.play().catch(() => { /* autoplay refused: the answer click normally allows it */ });
      });
      // Candidates found before the answer goes out are already in its SDP; only later ones are
      // trickled, followed by the end-of-candidates marker.
      pc.addEventListener('icecandidate', (ev) => {
        if (call !== c || !c.answerSent || c.endOfCandidatesSent) return;
        const cand = ev.candidate;
        if (cand && cand.candidate) {
          send({
            type: 'ice',
            call_id: c.id,
            candidate: { candidate: cand.candidate, sdpMid: cand.sdpMid, sdpMLineIndex: cand.sdpMLineIndex },
          });
        } else {
          c.endOfCandidatesSent = true;
          send({ type: 'ice', call_id: c.id, candidate: null });
        }
      });
      // With the socket up the edge reports media failures itself (call.ended media_failed);
      // without it, nobody will, so the page ends the call.
      pc.addEventListener('connectionstatechange', () => {
        if (call !== c) return;
        if ((pc.connectionState === 'failed' || pc.connectionState === 'closed') && !socketOpen()) {
          endCall('Audio could not connect', 'problem');
        }
      });

      await pc.setRemoteDescription({ type: 'offer', sdp: c.offer.sdp });
      stream.getAudioTracks().forEach((t) => pc.addTrack(t, stream));
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await gatheringDone(pc, ICE_GATHER_CAP_MS);
      if (call !== c) return;

      const sent = send({ type: 'answer', call_id: c.id, sdp: pc.localDescription.sdp });
      c.answerSent = true;
      if (pc.iceGatheringState === 'complete') c.endOfCandidatesSent = true;   // all in the SDP
      if (!sent) endCall('Audio could not connect — not connected to the server', 'problem');
    } catch (err) {
      if (call !== c) return;
      // The browser could not work with this offer; pass the call on rather than leave the
      // caller ringing on a page that cannot talk.
      send({ type: 'decline', call_id: c.id });
      notify('This call could not be answered here: ' + (err && err.message ? err.message : err), { kind: 'error' });
      endCall('Audio could not be set up — the call was passed on', 'problem');
    }
  }

  function gatheringDone(pc, capMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const t = setTimeout(done, capMs);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  function declineCall() {
    const c = call;
    if (!c || c.state !== 'ringing') return;
    send({ type: 'decline', call_id: c.id });
    // The edge confirms with call.ended "declined"; the page does not wait for it.
    endCall(ENDED_TEXT.declined[0], 'done');
  }

  function hangUp() {
    const c = call;
    if (!c || c.state === 'ringing') return;
    // Before the answer has gone out the edge still sees a ringing call: that is a decline.
    if (c.answerSent) send({ type: 'hangup', call_id: c.id });
    else send({ type: 'decline', call_id: c.id });
    endCall(ENDED_TEXT.agent_hangup[0], 'done');
  }

  function setMuted(muted) {
    if (call) call.muted = muted;
    if (micStream) micStream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    el.mute.setAttribute('aria-pressed', String(muted));
    el.mutedFlag.hidden = !muted;
  }

  function toggleMute() {
    if (!call || call.state === 'ringing') return;
    setMuted(!call.muted);
    announce(call.muted ? 'Microphone muted' : 'Microphone on');
  }

  function sendDigit(digit) {
    if (!call || call.state !== 'active') return;
    if (!send({ type: 'dtmf', call_id: call.id, digits: digit })) {
      notify('Not connected to the server; the key was not sent.', { kind: 'warn' });
      return;
    }
    call.digits += digit;
    el.digitsSent.textContent = call.digits.slice(-24);
    keyTone(digit);
    const key = el.keypad.querySelector('.key[data-digit="' + digit + '"]');
    if (key) {
      key.classList.add('pressed');
      setTimeout(() => key.classList.remove('pressed'), 150);
    }
  }

  // Tears the current call down on this page: sound, timers, peer connection, audio.
  function endCall(message, kind) {
    const c = call;
    call = null;
    stopRinging();
    stopTitleFlash();
    clearInterval(timers.ring);
    clearInterval(timers.callClock);
    timers.ring = timers.callClock = 0;
    if (c && c.pc) {
      try { c.pc.close(); } catch (e) { /* already closed */ }
    }
    el.remoteAudio.srcObject = null;
    setMuted(false);

    const focusWasInCall = el.incoming.contains(document.activeElement) ||
      el.inCall.contains(document.activeElement);
    if (message && c) showEnded(message, kind, c);
    render();
    if (focusWasInCall && !el.app.hidden) el.idleTitle.focus();
  }

  function showEnded(message, kind, c) {
    clearTimeout(timers.ended);
    el.callEnded.textContent = '';
    el.callEnded.dataset.kind = kind || 'done';
    const main = document.createElement('span');
    main.textContent = message;
    const extra = [callerLabel(c.offer)];
    if (c.answeredAt) extra.push(formatClock(Date.now() - c.answeredAt));
    const sub = document.createElement('span');
    sub.className = 'sub';
    sub.textContent = ' · ' + extra.join(' · ');
    el.callEnded.append(main, sub);
    timers.ended = setTimeout(clearEnded, ENDED_SHOWN_MS);
  }

  function clearEnded() {
    clearTimeout(timers.ended);
    timers.ended = 0;
    el.callEnded.textContent = '';
  }

  // ---------------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------------

  // Fills the caller details of one card. Elements carry data-field; rows (data-row) without a
  // value are hidden, since the edge omits empty and unknown fields.
  function fillDetails(root, offer) {
    const ivr = Array.isArray(offer.ivr) ? offer.ivr.filter((k) => k !== '') : [];
    const values = {
      'caller-name': offer.caller_name || '',
      caller: offer.caller ? formatNumber(offer.caller) : 'Unknown number',
      source: offer.source || '',
      medium: offer.medium || '',
      campaign: offer.campaign || '',
      keyword: offer.keyword || '',
      'tracking-number': formatNumber(offer.tracking_number),
      queue: offer.queue || '',
      ivr: ivr.length ? 'pressed ' + ivr.join(', ') : '',
    };
    root.querySelectorAll('[data-field]').forEach((node) => {
      node.textContent = values[node.dataset.field] || '';
    });
    const callerNode = root.querySelector('[data-field="caller"]');
    if (callerNode) {
      if (offer.caller) callerNode.title = offer.caller;
      else callerNode.removeAttribute('title');
    }
    const nameNode = root.querySelector('[data-field="caller-name"]');
    if (nameNode) nameNode.hidden = !values['caller-name'];
    const who = root.querySelector('.who');
    if (who) who.classList.toggle('no-name', !values['caller-name']);
    root.querySelectorAll('[data-row]').forEach((row) => {
      const f = row.dataset.row;
      if (f === 'waited') {
        row.hidden = offer.waited_ms == null && !offer.started_at;
      } else if (f === 'source') {
        row.hidden = !values.source && !values.medium;
      } else {
        row.hidden = !values[f];
      }
    });
  }

  // How long the caller has waited. waited_ms is measured by the edge when it sends the offer,
  // so counting on from its arrival is immune to a wrong clock on the laptop; started_at is the
  // fallback when waited_ms is absent.
  function waitedMs(c) {
    const o = c.offer;
    if (typeof o.waited_ms === 'number') return o.waited_ms + (Date.now() - c.receivedAt);
    const t = Date.parse(o.started_at);
    return isNaN(t) ? 0 : Date.now() - t;
  }

  function renderRingClock() {
    if (!call) return;
    el.waited.textContent = formatWait(waitedMs(call));
    const total = call.offer.ring_timeout_ms;
    if (typeof total === 'number' && total > 0) {
      const left = Math.max(0, total - (Date.now() - call.receivedAt));
      el.ringLeftWrap.hidden = false;
      el.ringLeft.textContent = Math.ceil(left / 1000) + ' s';
      el.ringBar.style.width = (100 * left / total).toFixed(1) + '%';
    } else {
      el.ringLeftWrap.hidden = true;
    }
  }

  function renderCallClock() {
    el.timer.textContent = call && call.answeredAt ? formatClock(Date.now() - call.answeredAt) : '00:00';
  }

  function renderCountdown() {
    const s = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
    el.connectionCountdown.textContent = ws ? '' : s > 0 ? '(in ' + s + ' s)' : '';
  }

  const STATUS_TEXT = {
    available: 'Available', away: 'Away', busy: 'Busy', ringing: 'Ringing', oncall: 'On call', offline: 'Offline',
  };

  function render() {
    const online = welcomed && socketOpen();

    // The badge: the call on this page first, then what the edge says.
    let state;
    if (call && call.state === 'ringing') state = 'ringing';
    else if (call) state = 'oncall';
    else if (!online) state = 'offline';
    else state = serverPresence;
    if (!STATUS_TEXT[state]) state = 'away';
    if (el.status.dataset.state !== state) {
      el.status.dataset.state = state;
      el.status.textContent = STATUS_TEXT[state];
    }

    // The select shows the agent's own choice; busy is shown by the badge.
    el.presence.value = choosingPresence ? 'available' : chosenPresence;
    el.presence.disabled = !online || choosingPresence;
    el.goAvailable.disabled = choosingPresence;
    el.logout.disabled = !!call;

    // Connection banner, after a drop only (before the first welcome the form reports problems).
    const dropped = everWelcomed && !online && !stopped;
    el.connection.hidden = !dropped;
    if (dropped) {
      el.reconnectNow.hidden = !!ws;
      renderCountdown();
    }

    // Cards.
    el.incoming.hidden = !(call && call.state === 'ringing');
    el.inCall.hidden = !(call && call.state !== 'ringing');
    el.idle.hidden = !!call;

    if (call && call.state !== 'ringing') {
      const active = call.state === 'active';
      el.inCall.dataset.state = active ? 'active' : 'connecting';
      el.callStateText.textContent = active ? 'On call' : 'Connecting…';
      el.keypad.querySelectorAll('.key').forEach((k) => { k.disabled = !active; });
      el.mute.disabled = false;
      if (!active) el.timer.textContent = '00:00';
    }

    if (!call) {
      let title, text, idleState;
      if (!online) {
        idleState = 'away';
        title = 'Offline';
        text = 'Reconnecting to the server. Calls cannot reach you until the connection is back.';
      } else if (serverPresence === 'busy') {
        idleState = 'busy';
        title = 'Busy';
        text = 'You will be offered calls again when the current one is over.';
      } else if (chosenPresence === 'available') {
        idleState = 'available';
        title = 'Waiting for calls';
        text = 'You are available. Incoming calls ring here with the caller and where they found you.';
      } else {
        idleState = 'away';
        title = 'You are away';
        text = 'Set yourself Available to start receiving calls.';
      }
      el.idle.dataset.state = idleState;
      el.idleTitle.textContent = title;
      el.idleText.textContent = text;
      el.goAvailable.hidden = !(online && chosenPresence === 'away' && serverPresence !== 'busy');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Login form
  // ---------------------------------------------------------------------------------------

  // invalid: the field to mark as the cause, when the problem is a missing value.
  function showLoginError(text, invalid) {
    el.loginError.textContent = text;
    el.agent.removeAttribute('aria-invalid');
    el.token.removeAttribute('aria-invalid');
    if (invalid) invalid.setAttribute('aria-invalid', 'true');
  }

  function setLoginBusy(busy) {
    el.loginButton.disabled = busy;
    el.loginButton.textContent = busy ? 'Connecting…' : 'Log in';
    el.agent.readOnly = busy;
    el.token.readOnly = busy;
  }

  function onLoginSubmit(ev) {
    ev.preventDefault();
    if (el.loginButton.disabled) return;
    unlockAudio();
    const a = el.agent.value.trim();
    const t = el.token.value;
    if (!a || !t) {
      showLoginError(!a ? 'Enter your agent ID.' : 'Enter your token.', !a ? el.agent : el.token);
      (!a ? el.agent : el.token).focus();
      return;
    }
    showLoginError('');
    agentId = a;
    token = t;
    try { localStorage.setItem(AGENT_KEY, a); } catch (e) { /* private mode: prefill is a nicety */ }
    stopped = false;
    everWelcomed = false;
    reconnectAttempt = 0;
    setLoginBusy(true);
    connect();
  }

  function logOut() {
    if (call) return;
    // Away first, so that logging in again soon does not restore Available unexpectedly.
    if (socketOpen() && chosenPresence === 'available') send({ type: 'presence', status: 'away' });
    endSession('');
    showLoginError('');
  }

  // ---------------------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------------------

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName;
    return tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || target.isContentEditable;
  }

  function onKeyDown(ev) {
    if (el.app.hidden || ev.ctrlKey || ev.metaKey || ev.repeat) return;
    // Alt+Shift+letter shortcuts use the physical key so they work on any layout (and on macOS,
    // where Option changes the character).
    if (ev.altKey && ev.shiftKey) {
      const action = {
        KeyA: answerCall, KeyD: declineCall, KeyH: hangUp, KeyM: toggleMute,
      }[ev.code];
      if (action) {
        ev.preventDefault();
        action();
      }
      return;
    }
    if (ev.altKey || isTyping(ev.target)) return;
    if (call && call.state === 'active' && /^[0-9*#]$/.test(ev.key)) {
      ev.preventDefault();
      sendDigit(ev.key);
    }
  }

  function init() {
    // Prefill the agent id: ?agent= first, then the last one used on this browser.
    let prefill = '';
    try { prefill = new URLSearchParams(location.search).get('agent') || ''; } catch (e) { /* old browser */ }
    if (!prefill) {
      try { prefill = localStorage.getItem(AGENT_KEY) || ''; } catch (e) { /* storage disabled */ }
    }
    el.agent.value = prefill;
    (prefill ? el.token : el.agent).focus();

    el.login.addEventListener('submit', onLoginSubmit);
    el.presence.addEventListener('change', () => choosePresence(el.presence.value));
    el.goAvailable.addEventListener('click', () => choosePresence('available'));
    el.logout.addEventListener('click', logOut);
    el.reconnectNow.addEventListener('click', reconnectNow);
    el.answer.addEventListener('click', answerCall);
    el.decline.addEventListener('click', declineCall);
    el.hangup.addEventListener('click', hangUp);
    el.mute.addEventListener('click', toggleMute);
    el.keypad.addEventListener('click', (ev) => {
      const key = ev.target.closest('.key');
      if (key && !key.disabled) sendDigit(key.dataset.digit);
    });
    document.addEventListener('keydown', onKeyDown);
    // Any interaction may be the gesture the browser wants before it plays the ring tone.
    document.addEventListener('pointerdown', unlockAudio, { passive: true });
    document.addEventListener('keydown', unlockAudio);
    // Back online: no point waiting out the backoff.
    window.addEventListener('online', () => { if (!ws && !stopped && everWelcomed) reconnectNow(); });
    window.addEventListener('beforeunload', () => { if (ws) ws.close(1000); });

    render();
  }

  // Read-only handles for automated tests.
  window.softphone = Object.freeze({
    get pc() { return call && call.pc ? call.pc : null; },
    get callId() { return call ? call.id : null; },
    get ws() { return ws; },
    // Whether the ring tone is sounding: its oscillators run on a running audio clock.
    get ringing() { return !!ringNodes && !!audioCtx && audioCtx.state === 'running'; },
  });

  init();
})();
