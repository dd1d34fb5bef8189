// ivrd agent softphone: signs in, speaks the agent protocol
// (docs/agent-protocol.md) over the WebSocket at /api/v1/agent/ws and
// carries the call's audio on one RTCPeerConnection, which outlives
// WebSocket reconnects. Plain JavaScript, no dependencies.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // ---- State -------------------------------------------------------------

  const S = {
    view: 'loading',  // loading | login | desk
    me: null,         // the logged-in user (/api/v1/me or the login answer)
    agent: null,      // hello.agent {id, name, skills}

    ws: null,         // the current WebSocket, open or opening
    wantWS: false,    // false after logout: do not reconnect
    linked: false,    // the server greeted this connection (hello)
    everLinked: false,
    backoff: 500,     // ms before the next reconnect attempt
    retryTimer: 0,
    retryAt: 0,
    attempts: 0,

    state: null, since: 0, reason: '',
    call: null,       // {id, info, phase: ringing|connected, offeredAt, connectedAt, accepting}
    lastEnded: null,  // {info, reason, at}
    wrap: null,       // {id, deadline, info}

    pc: null, offerSeq: 0,
    localStream: null,
    muted: false, held: false,
    micError: '',     // why the microphone is unavailable, '' when it works
    audioProblem: '',
    lastError: '',
  };

  const STATE_LABEL = {
    available: 'Available', not_ready: 'Not ready', offline: 'Offline',
    reserved: 'Ringing', on_call: 'On a call', wrap_up: 'Wrap-up',
  };
  const END_REASON = {
    caller_hangup: 'the caller hung up',
    agent_hangup: 'you hung up',
    missed: 'not answered in time',
    declined: 'you declined it',
    caller_gone: 'the caller hung up while it rang',
    agent_lost: 'your audio or connection was lost',
    shutdown: 'the server is shutting down',
  };
  const DISPOSITIONS = ['resolved', 'follow_up', 'escalated', 'no_answer_needed', 'other'];

  // ---- Small helpers -----------------------------------------------------

  function fmtDur(sec) {
    sec = Math.max(0, Math.floor(sec));
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    const ss = String(s).padStart(2, '0');
    return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }

  function parseSince(v) {
    const t = Date.parse(v || '');
    return Number.isFinite(t) ? Math.min(t, Date.now()) : Date.now();
  }

  function text(el, s) { if (el.textContent !== s) el.textContent = s; }
  function show(el, on) { el.hidden = !on; }

  function toast(msg) {
    const box = $('toasts');
    const t = document.createElement('div');
    t.className = 'toast';
    t.textContent = msg;
    box.appendChild(t);
    while (box.children.length > 3) box.removeChild(box.firstChild);
    setTimeout(() => t.remove(), 7000);
  }

  function fail(msg) {
    S.lastError = msg;
    toast(msg);
  }

  function inCall() { return S.call !== null; }

  // ---- Sound: the ringer and the remote audio analysis -------------------

  let actx = null;
  function audioCtx() {
    if (!actx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      actx = new AC();
    }
    return actx;
  }
  // Browsers start audio only after a gesture: every click and key resumes.
  function unlockAudio() {
    const c = audioCtx();
    if (c && c.state === 'suspended') c.resume().catch(() => {});
    const el = $('remote-audio');
    if (el.srcObject && el.paused) el.play().catch(() => {});
  }

  let ringTimer = 0;
  let ringNodes = [];
  function ringBurst() {
    const c = audioCtx();
    if (!c || c.state !== 'running') return;
    const t0 = c.currentTime + 0.02;
    for (const start of [0, 0.55]) {
      const g = c.createGain();
      g.gain.setValueAtTime(0, t0 + start);
      g.gain.linearRampToValueAtTime(0.07, t0 + start + 0.03);
      g.gain.setValueAtTime(0.07, t0 + start + 0.37);
      g.gain.linearRampToValueAtTime(0, t0 + start + 0.4);
      g.connect(c.destination);
      for (const f of [440, 480]) {
        const o = c.createOscillator();
        o.frequency.value = f;
        o.connect(g);
        o.start(t0 + start);
        o.stop(t0 + start + 0.42);
        ringNodes.push(o);
        o.onended = () => { ringNodes = ringNodes.filter((n) => n !== o); };
      }
    }
  }
  function startRing() {
    if (ringTimer) return;
    ringBurst();
    ringTimer = setInterval(ringBurst, 3000);
  }
  function stopRing() {
    clearInterval(ringTimer);
    ringTimer = 0;
    for (const o of ringNodes) { try { o.stop(); } catch (_) { /* already stopped */ } }
    ringNodes = [];
  }

  let analyser = null, analyserSrc = null;
  function attachRemote(stream) {
    const el = $('remote-audio');
    // WebAudio hears a remote WebRTC track only while a media element
    // plays it too: the element is also what the agent listens to.
    el.srcObject = stream;
    el.play().catch(() => {});
    const c = audioCtx();
    if (!c) return;
    if (analyserSrc) analyserSrc.disconnect();
    analyserSrc = c.createMediaStreamSource(stream);
    analyser = c.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0.3;
    analyserSrc.connect(analyser);
  }

  // RMS (0..1) of the remote audio right now.
  function audioLevel() {
    if (!analyser) return 0;
    const buf = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    return Math.sqrt(sum / buf.length);
  }

  // The strongest frequency (Hz) of the remote audio; 0 in silence.
  function dominantFrequency() {
    if (!analyser) return 0;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const hz = analyser.context.sampleRate / analyser.fftSize;
    let best = -1, bestDb = -Infinity;
    for (let i = Math.ceil(60 / hz); i < bins.length; i++) {
      if (bins[i] > bestDb) { bestDb = bins[i]; best = i; }
    }
    return best < 0 || bestDb < -90 ? 0 : best * hz;
  }

  // ---- Microphone ---------------------------------------------------------

  function micMessage(err) {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return 'Browsers allow the microphone only on secure pages: open ivrd over https://, ' +
        'or on this computer at http://localhost or http://127.0.0.1.';
    }
    switch (err && err.name) {
      case 'NotAllowedError':
      case 'SecurityError':
        return 'The browser blocked the microphone for this page. Click the icon left of the address bar, ' +
          'allow Microphone for this site, then press "Try again".';
      case 'NotFoundError':
      case 'OverconstrainedError':
        return 'No microphone was found. Plug in a headset, then press "Try again".';
      case 'NotReadableError':
      case 'AbortError':
        return 'The microphone is in use by another program or failed to start. Close that program, then press "Try again".';
      case 'TrackEnded':
        return 'The microphone stopped (unplugged?). Plug it back in, then press "Try again".';
      default:
        return 'The microphone could not be opened' + (err && err.message ? ` (${err.message})` : '') + '. Press "Try again".';
    }
  }

  function micLive() {
    const t = S.localStream && S.localStream.getAudioTracks()[0];
    return t && t.readyState === 'live' ? t : null;
  }

  // ensureMic opens the microphone once and keeps it; it throws (and shows
  // why) when it cannot.
  async function ensureMic() {
    if (micLive()) return S.localStream;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      S.micError = micMessage(null);
      render();
      throw new Error(S.micError);
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      S.micError = micMessage(err);
      render();
      throw err;
    }
    const track = stream.getAudioTracks()[0];
    track.enabled = !S.muted;
    track.addEventListener('ended', () => {
      if (S.localStream !== stream) return;
      S.micError = micMessage({ name: 'TrackEnded' });
      render();
    });
    S.localStream = stream;
    S.micError = '';
    // A new microphone mid-call (after "Try again"): send it on the
    // existing connection, no renegotiation needed.
    if (S.pc) {
      for (const sender of S.pc.getSenders()) {
        if (!sender.track || sender.track.kind === 'audio') sender.replaceTrack(track).catch(() => {});
      }
    }
    render();
    return stream;
  }

  function applyMute() {
    const t = S.localStream && S.localStream.getAudioTracks()[0];
    if (t) t.enabled = !S.muted;
  }

  // ---- WebRTC --------------------------------------------------------------

  function closePC() {
    if (S.pc) {
      S.pc.ontrack = null;
      S.pc.onconnectionstatechange = null;
      S.pc.close();
      S.pc = null;
    }
  }

  function iceGathered(pc, ms) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== 'complete') return;
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, ms); // send what we have rather than nothing
    });
  }

  // handleOffer answers the server's complete offer with a complete answer
  // on a new RTCPeerConnection (every offer is a new audio path on the
  // server's side). The answer goes back on the connection the offer came on.
  async function handleOffer(ws, sdp) {
    const seq = ++S.offerSeq;
    let stream;
    try {
      stream = await ensureMic();
    } catch (err) {
      S.lastError = 'microphone: ' + (err && err.name ? err.name : err);
      if (!inCall() && (S.state === 'available' || S.state === 'wrap_up')) {
        sendOn(ws, { type: 'state', state: 'not_ready', reason: 'microphone unavailable' });
      }
      return;
    }
    if (seq !== S.offerSeq) return; // a newer offer arrived meanwhile
    closePC();
    const pc = new RTCPeerConnection({ iceServers: [] });
    S.pc = pc;
    pc.ontrack = (ev) => attachRemote(ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]));
    pc.onconnectionstatechange = () => {
      if (S.pc !== pc) return;
      switch (pc.connectionState) {
        case 'connected':
          S.audioProblem = '';
          break;
        case 'disconnected':
          S.audioProblem = 'The audio connection is interrupted; waiting for it to come back…';
          break;
        case 'failed':
          S.audioProblem = 'The audio connection failed; ivrd will set up a new one.';
          break;
      }
      render();
    };
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      pc.addTrack(stream.getAudioTracks()[0], stream);
      await pc.setLocalDescription(await pc.createAnswer());
      await iceGathered(pc, 5000);
    } catch (err) {
      if (S.pc === pc) closePC();
      fail('Could not set up call audio: ' + (err && err.message ? err.message : err));
      return;
    }
    if (S.pc !== pc) return;
    sendOn(ws, { type: 'answer', sdp: pc.localDescription.sdp });
    render();
  }

  // ---- Signalling ----------------------------------------------------------

  function wsURL() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/agent/ws`;
  }

  function sendOn(ws, msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function send(msg) {
    if (sendOn(S.ws, msg) && S.linked) return true;
    fail('Not connected to ivrd: try again once the connection is back.');
    return false;
  }

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = 0;
    if (S.ws || !S.wantWS) return;
    S.attempts++;
    let opened = false;
    let ws;
    try {
      ws = new WebSocket(wsURL());
    } catch (err) {
      fail('Cannot open the connection: ' + err.message);
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (ev) => { if (S.ws === ws) onMessage(ws, ev.data); };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      S.linked = false;
      render();
      if (!S.wantWS) return;
      if (opened) {
        scheduleReconnect();
        return;
      }
      // The handshake was refused or the server is away: a browser cannot
      // read the status, so ask whether the session still holds.
      checkSession().then((ok) => { if (ok && S.wantWS) scheduleReconnect(); });
    };
    render();
  }

  function scheduleReconnect() {
    clearTimeout(S.retryTimer);
    const delay = S.backoff;
    S.backoff = Math.min(S.backoff * 2, 5000);
    S.retryAt = Date.now() + delay;
    S.retryTimer = setTimeout(connect, delay);
    render();
  }

  function reconnectNow() {
    if (S.ws || !S.wantWS) return;
    S.backoff = 500;
    connect();
  }

  function onMessage(ws, data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch (_) {
      return;
    }
    switch (m.type) {
      case 'hello': onHello(m); break;
      case 'state': onState(m); break;
      case 'offer': handleOffer(ws, m.sdp); break;
      case 'call_offered': onCallOffered(m); break;
      case 'call_connected': onCallConnected(m); break;
      case 'call_ended': onCallEnded(m); break;
      case 'wrapup': onWrapUp(m); break;
      case 'error': fail(m.message || 'error'); break;
      default: break; // newer servers may say more than we know
    }
    render();
  }

  function setState(state, since, reason) {
    if (state !== S.state || since) S.since = parseSince(since);
    S.state = state;
    S.reason = reason || '';
    if (state !== 'wrap_up') S.wrap = null;
  }

  function onHello(m) {
    S.linked = true;
    S.everLinked = true;
    S.backoff = 500;
    S.attempts = 0;
    S.agent = m.agent || S.agent;
    setState(m.state, m.since, m.reason);
    if (m.call) {
      const same = S.call && S.call.id === m.call.call_id;
      const connected = m.state === 'on_call';
      S.call = {
        id: m.call.call_id, info: m.call,
        phase: connected ? 'connected' : 'ringing',
        offeredAt: same ? S.call.offeredAt : Date.now(),
        connectedAt: connected ? (same && S.call.connectedAt ? S.call.connectedAt : S.since) : 0,
        accepting: same ? S.call.accepting : false,
      };
      if (connected) stopRing(); else startRing();
    } else if (S.call) {
      // It ended while we were away.
      S.lastEnded = { info: S.call.info, reason: '', at: Date.now() };
      S.call = null;
      S.muted = false; S.held = false; applyMute();
      stopRing();
    }
  }

  function onState(m) {
    setState(m.state, m.since, m.reason);
  }

  function onCallOffered(m) {
    S.call = { id: m.call_id, info: m, phase: 'ringing', offeredAt: Date.now(), connectedAt: 0, accepting: false };
    S.muted = false; S.held = false; applyMute();
    unlockAudio();
    startRing();
  }

  function onCallConnected(m) {
    if (!S.call || S.call.id !== m.call_id) {
      S.call = { id: m.call_id, info: { call_id: m.call_id, caller: {} }, offeredAt: Date.now() };
    }
    S.call.phase = 'connected';
    S.call.connectedAt = Date.now();
    S.call.accepting = false;
    stopRing();
    unlockAudio();
  }

  function onCallEnded(m) {
    stopRing();
    const info = S.call && S.call.id === m.call_id ? S.call.info : { call_id: m.call_id, caller: {} };
    if (S.call && S.call.id === m.call_id) S.call = null;
    S.lastEnded = { info, reason: m.reason || '', at: Date.now() };
    S.muted = false; S.held = false; applyMute();
  }

  function onWrapUp(m) {
    const fresh = !S.wrap || S.wrap.id !== m.call_id;
    const info = S.lastEnded && S.lastEnded.info && S.lastEnded.info.call_id === m.call_id ? S.lastEnded.info : null;
    S.wrap = { id: m.call_id, deadline: Date.now() + (Number(m.timeout_s) || 0) * 1000, info };
    if (fresh) {
      $('wrapup-disposition').value = DISPOSITIONS[0];
      $('wrapup-notes').value = '';
    }
  }

  // ---- Session ---------------------------------------------------------------

  // checkSession asks who is logged in: true to go on (or the server is
  // unreachable: keep trying), false when the login form is shown.
  async function checkSession() {
    let res;
    try {
      res = await fetch('/api/v1/me', { credentials: 'same-origin', cache: 'no-store' });
    } catch (_) {
      return true;
    }
    if (res.status === 401) {
      showLogin(S.everLinked ? 'Your session has ended: sign in again.' : '');
      return false;
    }
    if (res.status === 403) {
      showLogin('This account may not take calls: sign in with an agent account.');
      return false;
    }
    if (res.ok) {
      try { S.me = await res.json(); } catch (_) { /* keep the old one */ }
      if (S.me && S.me.role && S.me.role !== 'agent') {
        showLogin(notAgent(S.me.role));
        return false;
      }
    }
    return true;
  }

  function notAgent(role) {
    return `This is ${role === 'admin' ? 'an' : 'a'} ${role} account, and only agents take calls: sign in with an agent account.`;
  }

  function showLogin(msg) {
    S.wantWS = false;
    clearTimeout(S.retryTimer);
    if (S.ws) { const ws = S.ws; S.ws = null; ws.close(1000); }
    S.linked = false;
    S.view = 'login';
    const e = $('login-error');
    e.textContent = msg || '';
    show(e, !!msg);
    render();
    $('login-user').focus();
  }

  function showDesk() {
    S.view = 'desk';
    S.wantWS = true;
    render();
    connect();
  }

  async function login(ev) {
    ev.preventDefault();
    unlockAudio();
    const user = $('login-user').value.trim();
    const pass = $('login-pass').value;
    const err = $('login-error');
    if (!user || !pass) {
      err.textContent = 'Enter your user name and password.';
      show(err, true);
      return;
    }
    $('login-submit').disabled = true;
    const { status, body } = await window.ivrdCommon.signIn(user, pass);
    $('login-submit').disabled = false;
    if (status === 0) {
      err.textContent = 'Cannot reach ivrd. Check the network and try again.';
      show(err, true);
      return;
    }
    const res = { status, ok: status >= 200 && status < 300 };
    if (res.status === 401) {
      err.textContent = 'Wrong user name or password.';
    } else if (!res.ok) {
      err.textContent = body.error || `Sign-in failed (HTTP ${res.status}).`;
    } else if (body.role && body.role !== 'agent') {
      err.textContent = notAgent(body.role);
      fetch('/api/v1/logout', { method: 'POST', credentials: 'same-origin', cache: 'no-store' }).catch(() => {});
    } else {
      $('login-pass').value = '';
      show(err, false);
      S.me = body.user || { name: user };
      S.everLinked = false;
      showDesk();
      return;
    }
    show(err, true);
  }

  async function logout() {
    if (inCall()) return;
    if (S.linked && S.state && S.state !== 'offline') sendOn(S.ws, { type: 'state', state: 'offline' });
    try {
      await fetch('/api/v1/logout', { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
    } catch (_) { /* the session ends on the server anyway when it expires */ }
    closePC();
    if (S.localStream) { for (const t of S.localStream.getTracks()) t.stop(); S.localStream = null; }
    Object.assign(S, { me: null, agent: null, state: null, call: null, wrap: null, lastEnded: null, everLinked: false, audioProblem: '' });
    stopRing();
    showLogin('');
  }

  // ---- Actions ----------------------------------------------------------------

  async function goAvailable() {
    unlockAudio();
    try {
      await ensureMic();
    } catch (_) {
      return; // the banner says why
    }
    send({ type: 'state', state: 'available' });
  }

  function accept() {
    if (!S.call || S.call.phase !== 'ringing' || S.call.accepting) return;
    unlockAudio();
    if (send({ type: 'accept', call_id: S.call.id })) {
      S.call.accepting = true;
      stopRing();
      render();
    }
  }

  function decline() {
    if (!S.call || S.call.phase !== 'ringing' || S.call.accepting) return;
    if (send({ type: 'decline', call_id: S.call.id })) {
      S.call.accepting = true;
      stopRing();
      render();
    }
  }

  function hangup() {
    if (!S.call || S.call.phase !== 'connected') return;
    send({ type: 'hangup', call_id: S.call.id });
  }

  function toggleMute() {
    if (!S.call || S.call.phase !== 'connected') return;
    S.muted = !S.muted;
    applyMute();
    render();
  }

  function toggleHold() {
    if (!S.call || S.call.phase !== 'connected') return;
    if (send({ type: 'hold', call_id: S.call.id, on: !S.held })) {
      S.held = !S.held;
      render();
    }
  }

  function wrapupDone(ev) {
    ev.preventDefault();
    if (!S.wrap) return;
    send({
      type: 'wrapup_done', call_id: S.wrap.id,
      disposition: $('wrapup-disposition').value, notes: $('wrapup-notes').value,
    });
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.altKey || e.metaKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const phase = S.call ? S.call.phase : '';
    if (phase === 'ringing' && (k === 'a' || k === 'Enter')) {
      e.preventDefault();
      accept();
    } else if (phase === 'ringing' && k === 'd') {
      e.preventDefault();
      decline();
    } else if (phase === 'connected' && k === 'h') {
      e.preventDefault();
      hangup();
    }
  }

  // ---- Rendering ----------------------------------------------------------------

  function callerLine(info) {
    const c = (info && info.caller) || {};
    return c.name || c.number || 'an unknown caller';
  }

  function render() {
    show($('login-view'), S.view === 'login');
    show($('desk-view'), S.view === 'desk');
    show($('who'), S.view === 'desk');
    show($('help'), S.view === 'desk');
    if (S.view !== 'desk') {
      show($('banner-conn'), false);
      show($('banner-mic'), false);
      show($('banner-audio'), false);
      document.title = 'ivrd · Agent';
      return;
    }

    const name = (S.agent && S.agent.name) || (S.me && (S.me.display_name || S.me.name)) || '';
    text($('agent-name'), name);

    // Connection.
    const link = $('link-state');
    link.classList.toggle('ok', S.linked);
    link.classList.toggle('bad', !S.linked && S.everLinked);
    text(link, S.linked ? 'connected' : (S.everLinked ? 'reconnecting…' : 'connecting…'));
    const lost = !S.linked && S.everLinked;
    show($('banner-conn'), lost);
    if (lost) {
      const wait = S.ws ? 0 : Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
      text($('banner-conn-text'), S.ws ? 'Reconnecting…' : (wait > 0 ? `Reconnecting in ${wait} s…` : 'Reconnecting…'));
    }

    // Microphone and audio.
    show($('banner-mic'), !!S.micError);
    text($('banner-mic-text'), S.micError);
    show($('banner-audio'), !!S.audioProblem && inCall());
    text($('banner-audio-text'), S.audioProblem);

    // Status.
    const st = S.state || '';
    const dot = $('state-dot');
    dot.className = 'state-dot ' + st;
    text($('state-label'), STATE_LABEL[st] || (st ? st : '—'));
    text($('state-time'), S.state ? fmtDur((Date.now() - S.since) / 1000) : '');
    const reason = $('state-reason');
    show(reason, !!S.reason);
    text(reason, S.reason ? `Reason: ${S.reason}` : '');
    const busy = inCall();
    const canChange = S.linked && !busy;
    const bAvail = $('btn-available'), bNR = $('btn-notready'), bOff = $('btn-offline');
    bAvail.disabled = !canChange || !!S.micError || st === 'available';
    bNR.disabled = !canChange;
    bOff.disabled = !canChange || st === 'offline';
    $('notready-reason').disabled = !canChange;
    bAvail.classList.toggle('current', st === 'available');
    bNR.classList.toggle('current', st === 'not_ready');
    bOff.classList.toggle('current', st === 'offline');
    const hint = $('state-hint');
    let h = '';
    if (S.micError) h = 'You cannot go Available until the microphone works.';
    else if (!S.linked) h = 'Status changes wait for the connection.';
    else if (busy) h = 'Finish the call to change your status.';
    show(hint, !!h);
    text(hint, h);
    $('logout').disabled = busy;

    const skills = $('skills');
    const sk = (S.agent && S.agent.skills) || {};
    const key = Object.keys(sk).sort().join(',');
    if (skills.dataset.key !== key) {
      skills.dataset.key = key;
      skills.replaceChildren(...Object.keys(sk).sort().map((k) => {
        const s = document.createElement('span');
        s.className = 'skill';
        s.textContent = k;
        s.title = `proficiency ${sk[k]}`;
        return s;
      }));
    }

    // Call.
    const c = S.call;
    show($('call-pop'), !!c);
    show($('call-idle'), !c && !S.wrap);
    show($('wrapup-form'), !c && !!S.wrap);
    if (c) renderCall(c);
    if (!c && S.wrap) {
      const left = Math.max(0, (S.wrap.deadline - Date.now()) / 1000);
      text($('wrapup-countdown'), `ends by itself in ${fmtDur(left)}`);
      const ended = S.lastEnded && S.lastEnded.info && S.lastEnded.info.call_id === S.wrap.id ? S.lastEnded : null;
      text($('wrapup-ended'), ended
        ? `Call with ${callerLine(ended.info)} ended${ended.reason ? ': ' + (END_REASON[ended.reason] || ended.reason) : ''}.`
        : 'The call has ended.');
      $('btn-wrapup-done').disabled = !S.linked;
    }
    if (!c && !S.wrap) {
      let idle;
      if (S.lastEnded && Date.now() - S.lastEnded.at < 60000) {
        idle = `Call with ${callerLine(S.lastEnded.info)} ended${S.lastEnded.reason ? ': ' + (END_REASON[S.lastEnded.reason] || S.lastEnded.reason) : ''}.`;
      } else if (st === 'available') idle = 'Waiting for a call…';
      else if (st === 'not_ready') idle = 'Not ready: no calls will ring.';
      else if (st === 'offline') idle = 'Offline. Choose Available to take calls.';
      else idle = 'No call.';
      text($('call-idle-text'), idle);
    }

    // The tab's title tells a ringing call even when the tab is hidden.
    if (c && c.phase === 'ringing') document.title = `Ringing: ${callerLine(c.info)} · ivrd`;
    else if (c) document.title = `On a call · ivrd`;
    else document.title = `${STATE_LABEL[st] || 'ivrd'} · ivrd Agent`;
  }

  function renderCall(c) {
    const info = c.info || {};
    const caller = info.caller || {};
    const pop = $('call-pop');
    pop.classList.toggle('ringing', c.phase === 'ringing');
    pop.classList.toggle('connected', c.phase === 'connected' && !S.held);
    pop.classList.toggle('held', c.phase === 'connected' && S.held);
    let phase;
    if (c.phase === 'ringing') phase = c.accepting ? 'Connecting…' : 'Incoming call';
    else phase = S.held ? 'On hold' : 'Connected';
    text($('pop-phase'), phase);
    $('pop-timer').classList.toggle('countdown', c.phase === 'ringing');
    if (c.phase === 'ringing') {
      const ring = Number(info.ring_timeout_s) || 0;
      const left = ring ? Math.max(0, ring - (Date.now() - c.offeredAt) / 1000) : 0;
      text($('pop-timer'), ring && !c.accepting ? `${Math.ceil(left)} s to answer` : '');
    } else {
      text($('pop-timer'), fmtDur((Date.now() - (c.connectedAt || Date.now())) / 1000));
    }
    const nameEl = $('pop-name');
    const nm = caller.name || 'Unknown caller';
    if (nameEl.dataset.v !== nm + '|' + (caller.tier || '')) {
      nameEl.dataset.v = nm + '|' + (caller.tier || '');
      nameEl.textContent = nm;
      if (caller.tier) {
        const t = document.createElement('span');
        t.className = 'tier';
        t.textContent = caller.tier;
        nameEl.appendChild(t);
      }
    }
    text($('pop-number'), caller.number || 'number withheld');
    text($('pop-customer'), caller.customer_id || '—');
    text($('pop-skill'), info.skill || '—');
    text($('pop-waited'), info.waited_s != null ? fmtDur(info.waited_s) : '—');
    const ivr = $('pop-ivr');
    const choices = (info.ivr && info.ivr.choices) || [];
    const vars = (info.ivr && info.ivr.vars) || {};
    const ivrKey = JSON.stringify([choices, vars]);
    if (ivr.dataset.key !== ivrKey) {
      ivr.dataset.key = ivrKey;
      const parts = choices.map((ch) => {
        const s = document.createElement('span');
        s.className = 'ivr-choice';
        s.textContent = `${ch.node}: ${ch.input}`;
        return s;
      });
      for (const k of Object.keys(vars).sort()) {
        const s = document.createElement('span');
        s.className = 'ivr-choice';
        s.textContent = `${k} = ${vars[k]}`;
        parts.push(s);
      }
      if (parts.length === 0) ivr.textContent = 'none';
      else ivr.replaceChildren(...parts);
    }

    const ringing = c.phase === 'ringing';
    show($('ring-actions'), ringing);
    show($('talk-actions'), !ringing);
    $('btn-accept').disabled = !S.linked || c.accepting;
    $('btn-decline').disabled = !S.linked || c.accepting;
    const mute = $('btn-mute'), hold = $('btn-hold');
    mute.setAttribute('aria-pressed', String(S.muted));
    text(mute, S.muted ? 'Unmute' : 'Mute');
    hold.setAttribute('aria-pressed', String(S.held));
    text(hold, S.held ? 'Resume' : 'Hold');
    hold.disabled = !S.linked;
    $('btn-hangup').disabled = !S.linked;
    const th = $('talk-hint');
    let h = '';
    if (!ringing && S.muted) h = 'Muted: the caller does not hear you.';
    if (!ringing && S.held) h = 'On hold: the caller hears hold music.';
    show(th, !!h);
    text(th, h);
  }

  // ---- Wiring ---------------------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('btn-available').addEventListener('click', goAvailable);
    $('btn-notready').addEventListener('click', () => send({ type: 'state', state: 'not_ready', reason: $('notready-reason').value }));
    $('btn-offline').addEventListener('click', () => send({ type: 'state', state: 'offline' }));
    $('btn-accept').addEventListener('click', accept);
    $('btn-decline').addEventListener('click', decline);
    $('btn-hangup').addEventListener('click', hangup);
    $('btn-mute').addEventListener('click', toggleMute);
    $('btn-hold').addEventListener('click', toggleHold);
    $('wrapup-form').addEventListener('submit', wrapupDone);
    $('reconnect-now').addEventListener('click', reconnectNow);
    $('mic-retry').addEventListener('click', () => { ensureMic().catch(() => {}); });
    document.addEventListener('keydown', onKey);
    document.addEventListener('pointerdown', unlockAudio, { passive: true });
    document.addEventListener('keydown', unlockAudio, { passive: true });
    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });
    // The call's audio lives in this page: leaving it mid-call drops the
    // caller back into the queue, so the browser asks first.
    window.addEventListener('beforeunload', (e) => {
      if (inCall()) { e.preventDefault(); e.returnValue = ''; }
    });
    // Leaving: close the WebSocket first, so ivrd, learning that this
    // page's audio is gone (the browser closes the RTCPeerConnection after
    // this), offers new audio to the next page rather than to this one.
    window.addEventListener('pagehide', () => {
      S.wantWS = false;
      if (S.ws) { const ws = S.ws; S.ws = null; ws.close(1001, 'page closed'); }
    });
    window.addEventListener('pageshow', (e) => {
      if (e.persisted && S.view === 'desk') { S.wantWS = true; reconnectNow(); }
    });
    setInterval(render, 500);

    // What a test (or a curious agent in the console) may read.
    window.ivrdAgent = Object.freeze({
      get state() { return S.state; },
      get callId() { return S.call ? S.call.id : null; },
      get callPhase() { return S.call ? S.call.phase : null; },
      get connected() { return S.linked; },
      get lastError() { return S.lastError; },
      get micError() { return S.micError; },
      get audioConnection() { return S.pc ? S.pc.connectionState : 'none'; },
      get muted() { return S.muted; },
      get held() { return S.held; },
      get lastEndReason() { return S.lastEnded ? S.lastEnded.reason : null; },
      audioLevel,
      dominantFrequency,
      // Drops the WebSocket as a network blip would; the page reconnects.
      dropConnection() { if (S.ws) S.ws.close(4000, 'dropped by the page'); },
    });

    render();
    checkSession().then((ok) => { if (ok) showDesk(); });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
