// ivrd supervisor console: the live wallboard (Server-Sent Events from
// /api/v1/wallboard/events), calls in progress, recordings with playback,
// and the audit trail of who listened to which recording
// (docs/supervisor.md). Plain JavaScript, no dependencies.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // ---- State -------------------------------------------------------------

  const S = {
    view: 'loading',   // loading | login | console
    tab: 'wallboard',  // wallboard | recordings | audit
    me: null,

    es: null,          // the EventSource while the console is open
    live: false,       // the stream delivered a snapshot and is open
    everLive: false,
    unavailable: '',   // the server says queue state is unavailable
    snap: null,        // the last snapshot {queues, agents, at}
    snapAt: 0,         // Date.now() when it arrived
    clockSkew: 0,      // server time − local time (ms), from the snapshot
    snapshots: 0,      // how many arrived (tests read it)
    calls: [],
    callsTimer: 0,

    rec: {
      filters: {},     // the query of the current search
      offset: 0,       // of the page shown
      limit: 25,
      next: null,      // offset of the next (older) page; null on the last
      total: 0,
      items: [],
      selected: null,  // the recording open in the player
      loading: false,
    },
    audit: { offset: 0, limit: 50, next: null, total: 0, items: [] },
    lastError: '',
  };

  const STATE_LABEL = {
    available: 'Available', not_ready: 'Not ready', offline: 'Offline',
    reserved: 'Ringing', on_call: 'On a call', wrap_up: 'Wrap-up',
  };
  const CALL_STATE = { waiting: 'Waiting', offered: 'Ringing', connected: 'With agent' };
  const DISPOSITION = {
    resolved: 'Resolved', follow_up: 'Follow-up needed', escalated: 'Escalated',
    no_answer_needed: 'No answer needed', other: 'Other',
  };
  const ACTION = { view: 'Opened', listen: 'Played', download: 'Downloaded' };
  // Segment kinds of recordings' metadata (docs/recordings.md).
  const SEGMENT = { ivr: 'IVR', queue: 'Queue', agent: 'Agent', hold: 'Hold' };

  // ---- Small helpers -----------------------------------------------------

  function fmtDur(sec) {
    sec = Math.max(0, Math.floor(sec));
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    const ss = String(s).padStart(2, '0');
    return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }
  function fmtTime(v) {
    const d = new Date(v);
    if (!Number.isFinite(d.getTime())) return '—';
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
      : d.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  function text(el, s) { if (el.textContent !== s) el.textContent = s; }
  function show(el, on) { el.hidden = !on; }
  function el(tag, cls, txt) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined) e.textContent = txt;
    return e;
  }
  function td(txt, cls) { return el('td', cls, txt); }
  function toast(msg) {
    const box = $('toasts');
    const t = el('div', 'toast', msg);
    box.appendChild(t);
    while (box.children.length > 3) box.removeChild(box.firstChild);
    setTimeout(() => t.remove(), 7000);
  }
  function fail(msg) { S.lastError = msg; toast(msg); }

  // api fetches JSON from the API; a 401 shows the login form.
  async function api(path, opts = {}) {
    let res;
    try {
      res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...opts });
    } catch (_) {
      throw new Error('Cannot reach ivrd. Check the network.');
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (res.status === 401) {
      showLogin('Your session has ended: sign in again.');
      throw new Error('signed out');
    }
    if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
    return body;
  }

  // ---- Session -----------------------------------------------------------

  function notSupervisor() {
    return 'This console is for supervisors and admins: sign in with such an account (agents use the softphone at /agent).';
  }

  async function checkSession() {
    let res;
    try {
      res = await fetch('/api/v1/me', { credentials: 'same-origin', cache: 'no-store' });
    } catch (_) {
      showLogin('Cannot reach ivrd. Check the network and reload.');
      return false;
    }
    if (!res.ok) { showLogin(''); return false; }
    try { S.me = await res.json(); } catch (_) { S.me = null; }
    if (!S.me || (S.me.role !== 'supervisor' && S.me.role !== 'admin')) {
      showLogin(notSupervisor());
      return false;
    }
    return true;
  }

  function showLogin(msg) {
    closeStream();
    clearInterval(S.callsTimer);
    S.callsTimer = 0;
    const audio = $('rec-audio');
    audio.pause();
    S.view = 'login';
    const e = $('login-error');
    e.textContent = msg || '';
    show(e, !!msg);
    render();
    $('login-user').focus();
  }

  function showConsole() {
    S.view = 'console';
    render();
    openStream();
    selectTab(tabFromHash() || S.tab);
  }

  async function login(ev) {
    ev.preventDefault();
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
    } else if (body.role !== 'supervisor' && body.role !== 'admin') {
      err.textContent = notSupervisor();
      fetch('/api/v1/logout', { method: 'POST', credentials: 'same-origin', cache: 'no-store' }).catch(() => {});
    } else {
      $('login-pass').value = '';
      show(err, false);
      S.me = body.user || { name: user, role: body.role };
      showConsole();
      return;
    }
    show(err, true);
  }

  async function logout() {
    try {
      await fetch('/api/v1/logout', { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
    } catch (_) { /* the session expires on the server anyway */ }
    S.me = null;
    showLogin('');
  }

  // ---- The live stream ---------------------------------------------------

  function openStream() {
    closeStream();
    const es = new EventSource('/api/v1/wallboard/events');
    S.es = es;
    es.addEventListener('snapshot', (e) => {
      if (S.es !== es) return;
      try { S.snap = JSON.parse(e.data); } catch (_) { return; }
      S.snapAt = Date.now();
      const at = Date.parse(S.snap.at);
      if (Number.isFinite(at)) S.clockSkew = at - S.snapAt;
      S.live = true;
      S.everLive = true;
      S.unavailable = '';
      S.snapshots++;
      renderBoard();
      render();
    });
    es.addEventListener('unavailable', (e) => {
      if (S.es !== es) return;
      try { S.unavailable = JSON.parse(e.data).error || 'queue state unavailable'; } catch (_) { S.unavailable = 'queue state unavailable'; }
      render();
    });
    es.addEventListener('end', () => {
      // The server ended the stream: the session is over, or ivrd is
      // shutting down. Ask who we are; the login form if nobody.
      if (S.es !== es) return;
      closeStream();
      render();
      setTimeout(() => { checkSession().then((ok) => { if (ok && S.view === 'console') openStream(); }); }, 2000);
    });
    es.onerror = () => {
      if (S.es !== es) return;
      S.live = false;
      render();
      // A refused stream (401, 403) is not retried by the browser.
      if (es.readyState === EventSource.CLOSED) {
        S.es = null;
        checkSession().then((ok) => { if (ok && S.view === 'console') setTimeout(openStream, 2000); });
      }
    };
  }

  function closeStream() {
    if (S.es) { S.es.close(); S.es = null; }
    S.live = false;
  }

  async function loadCalls() {
    if (S.view !== 'console' || S.tab !== 'wallboard' || document.hidden) return;
    try {
      S.calls = await api('/api/v1/calls');
      renderCalls();
    } catch (_) { /* the banner shows a lost connection; next poll retries */ }
  }

  // ---- Wallboard rendering ----------------------------------------------

  function serverNow() { return Date.now() + S.clockSkew; }

  function renderBoard() {
    const snap = S.snap;
    if (!snap) return;
    // Skills for the recordings filter.
    const sel = $('f-skill');
    const skills = (snap.queues || []).map((q) => q.skill);
    if (sel.dataset.key !== skills.join(',')) {
      sel.dataset.key = skills.join(',');
      const cur = sel.value;
      sel.replaceChildren(el('option', '', 'Any'), ...skills.map((s) => { const o = el('option', '', s); o.value = s; return o; }));
      sel.firstChild.value = '';
      sel.value = cur;
    }

    const tiles = $('tiles');
    const byId = new Map([...tiles.children].map((t) => [t.dataset.skill, t]));
    const order = [];
    for (const q of snap.queues || []) {
      let t = byId.get(q.skill);
      if (!t) t = makeTile(q.skill);
      fillTile(t, q);
      order.push(t);
    }
    tiles.replaceChildren(...order);
    renderAgents();
  }

  function makeTile(skill) {
    const t = el('article', 'tile');
    t.dataset.skill = skill;
    t.setAttribute('aria-label', `Queue ${skill}`);
    t.append(el('div', 'tile-skill', skill));
    const main = el('div', 'tile-main');
    main.append(el('span', 'tile-waiting'), el('span', 'tile-waiting-label', 'waiting'));
    t.append(main);
    const dl = el('dl');
    for (const [k, label] of [['longest', 'Longest wait'], ['ewt', 'Estimate'], ['sl', 'Service level'],
      ['answered', 'Answered'], ['abandoned', 'Abandoned'], ['avg', 'Average wait']]) {
      const d = el('div');
      const dd = el('dd');
      dd.dataset.k = k;
      d.append(el('dt', '', label), dd);
      dl.append(d);
    }
    t.append(dl, el('div', 'tile-agents'));
    return t;
  }

  function fillTile(t, q) {
    const set = (k, v) => text(t.querySelector(`dd[data-k="${k}"]`), v);
    text(t.querySelector('.tile-waiting'), String(q.waiting));
    set('longest', q.waiting > 0 ? fmtDur(q.longest_wait_s) : '—');
    set('ewt', q.ewt_known ? fmtDur(q.ewt_s) : '—');
    set('sl', `${Math.round((q.service_level || 0) * 100)} %`);
    set('answered', String(q.answered));
    set('abandoned', String(q.abandoned));
    set('avg', q.answered > 0 ? fmtDur(q.avg_wait_s) : '—');
    const a = q.agents || {};
    text(t.querySelector('.tile-agents'),
      `Agents: ${a.available || 0} available · ${a.busy || 0} busy · ${a.wrap_up || 0} wrap-up · ${a.not_ready || 0} not ready`);
    const thr = q.service_level_threshold_s || 20;
    t.classList.toggle('busy', q.waiting > 0 && q.longest_wait_s < thr);
    t.classList.toggle('alert', q.waiting > 0 && (q.longest_wait_s >= thr || (a.available || 0) + (a.busy || 0) + (a.wrap_up || 0) === 0));
    t.dataset.waiting = String(q.waiting);
  }

  function renderAgents() {
    const agents = (S.snap && S.snap.agents) || [];
    const body = $('agents-body');
    const rows = agents.map((a) => {
      const tr = el('tr');
      tr.dataset.agent = a.id;
      const name = td('');
      name.append(el('span', '', a.name || a.id));
      if (a.name && a.name !== a.id) name.append(el('span', 'sub', a.id));
      const st = td('');
      const cell = el('div', 'state-cell');
      cell.append(el('span', 'state-dot ' + a.state), el('span', '', STATE_LABEL[a.state] || a.state));
      if (a.reason) cell.append(el('span', 'reason', `(${a.reason})`));
      st.append(cell);
      const time = td('', 'num in-state');
      time.dataset.since = String(Date.parse(a.since) || 0);
      const call = td(a.call_id || '—', a.call_id ? 'mono' : '');
      const skills = td(Object.keys(a.skills || {}).sort().join(', ') || '—');
      tr.append(name, st, time, call, skills);
      return tr;
    });
    body.replaceChildren(...rows);
    show($('agents-empty'), agents.length === 0);
    tick();
  }

  // tick advances the times in state every second between snapshots.
  function tick() {
    const now = serverNow();
    for (const c of document.querySelectorAll('#agents-body .in-state')) {
      const since = Number(c.dataset.since);
      text(c, since > 0 ? fmtDur((now - since) / 1000) : '—');
    }
    const up = $('board-updated');
    if (S.snapAt) {
      const age = (Date.now() - S.snapAt) / 1000;
      text(up, age < 3 ? '' : `last update ${fmtDur(age)} ago`);
      up.classList.toggle('stale', age >= 3);
    }
  }

  function renderCalls() {
    const body = $('calls-body');
    const rows = (S.calls || []).map((c) => {
      const tr = el('tr');
      tr.dataset.call = c.call_id;
      const who = td('');
      const cl = c.caller || {};
      who.append(el('span', '', cl.name || cl.number || 'Unknown caller'));
      if (cl.name && cl.number) who.append(el('span', 'sub', cl.number));
      const state = c.state === 'waiting' && c.position ? `Waiting (#${c.position})` : (CALL_STATE[c.state] || c.state);
      tr.append(who, td(c.skill || '—'), td(state), td(fmtDur(c.waited_s), 'num'), td(fmtDur(c.in_state_s), 'num'),
        td(c.agent ? (c.agent.name || c.agent.id) : '—'));
      return tr;
    });
    body.replaceChildren(...rows);
    show($('calls-empty'), rows.length === 0);
  }

  // ---- Tabs --------------------------------------------------------------

  function tabFromHash() {
    const h = location.hash.replace('#', '');
    return ['wallboard', 'recordings', 'audit'].includes(h) ? h : '';
  }

  function selectTab(tab) {
    S.tab = tab;
    for (const t of ['wallboard', 'recordings', 'audit']) {
      $('tab-' + t).setAttribute('aria-selected', String(t === tab));
      show($(t + '-view'), t === tab);
    }
    if (location.hash !== '#' + tab) history.replaceState(null, '', '#' + tab);
    clearInterval(S.callsTimer);
    S.callsTimer = 0;
    if (tab === 'wallboard') {
      loadCalls();
      S.callsTimer = setInterval(loadCalls, 2000);
    } else if (tab === 'recordings' && S.rec.items.length === 0 && !S.rec.loading) {
      searchRecordings();
    } else if (tab === 'audit') {
      loadAudit(S.audit.offset);
    }
  }

  // ---- Recordings --------------------------------------------------------

  function readFilters() {
    const f = {};
    const local = (id) => {
      const v = $(id).value;
      if (!v) return '';
      const d = new Date(v);
      return Number.isFinite(d.getTime()) ? d.toISOString() : '';
    };
    const from = local('f-from'), to = local('f-to');
    if (from) f.from = from;
    if (to) f.to = to;
    for (const [k, id] of [['agent', 'f-agent'], ['caller', 'f-caller'], ['skill', 'f-skill'], ['disposition', 'f-disposition'], ['min_duration_s', 'f-min']]) {
      const v = $(id).value.trim();
      if (v) f[k] = v;
    }
    return f;
  }

  function searchRecordings(ev) {
    if (ev) ev.preventDefault();
    S.rec.filters = readFilters();
    S.rec.offset = 0;
    loadRecordings();
  }

  async function loadRecordings() {
    const q = new URLSearchParams(S.rec.filters);
    q.set('offset', String(S.rec.offset));
    q.set('limit', String(S.rec.limit));
    const err = $('rec-error');
    S.rec.loading = true;
    renderRecordings();
    try {
      const body = await api('/api/v1/recordings?' + q.toString());
      S.rec.items = body.recordings || [];
      S.rec.next = body.next_offset ?? null;
      S.rec.total = body.total || 0;
      show(err, false);
    } catch (e) {
      S.rec.items = [];
      S.rec.next = null;
      S.rec.total = 0;
      if (e.message !== 'signed out') {
        err.textContent = 'Recordings: ' + e.message;
        show(err, true);
      }
    }
    S.rec.loading = false;
    renderRecordings();
  }

  function callerText(r) {
    const c = r.caller || {};
    return c.number || c.name || 'unknown';
  }

  function renderRecordings() {
    const body = $('rec-body');
    const sel = S.rec.selected && S.rec.selected.id;
    const rows = S.rec.items.map((r) => {
      const tr = el('tr');
      tr.dataset.id = r.id;
      tr.tabIndex = 0;
      tr.setAttribute('aria-selected', String(r.id === sel));
      const who = td('');
      who.append(el('span', '', callerText(r)));
      if (r.caller && r.caller.name && r.caller.number) who.append(el('span', 'sub', r.caller.name));
      tr.append(td(fmtTime(r.answered)), who, td(r.agent || '—'), td(r.skill || '—'),
        td(DISPOSITION[r.disposition] || r.disposition || '—'), td(fmtDur(r.duration_s), 'num'));
      tr.addEventListener('click', () => openRecording(r.id));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openRecording(r.id); } });
      return tr;
    });
    body.replaceChildren(...rows);
    show($('rec-empty'), !S.rec.loading && rows.length === 0);
    const R = S.rec;
    text($('rec-page'), R.loading ? 'Loading…' : (R.total ? `${R.offset + 1}–${R.offset + rows.length} of ${R.total}` : ''));
    text($('rec-count'), R.loading ? '' : `(${R.total})`);
    $('rec-newer').disabled = R.loading || R.offset === 0;
    $('rec-older').disabled = R.loading || R.next === null;
  }

  async function openRecording(id) {
    let r;
    try {
      r = await api('/api/v1/recordings/' + encodeURIComponent(id));
    } catch (e) {
      if (e.message !== 'signed out') fail('Recording: ' + e.message);
      return;
    }
    S.rec.selected = r;
    const audio = $('rec-audio');
    audio.pause();
    audio.src = `/api/v1/recordings/${encodeURIComponent(r.id)}/audio`;
    audio.load();
    $('rec-download').href = `/api/v1/recordings/${encodeURIComponent(r.id)}/audio?download=1`;
    $('rec-download').setAttribute('download', `${r.id}.wav`);
    renderMeta(r);
    renderSegments(r);
    show($('player'), true);
    renderRecordings();
  }

  function renderMeta(r) {
    const facts = [
      ['Started', fmtTime(r.answered)],
      ['Duration', fmtDur(r.duration_s)],
      ['Caller', [r.caller && r.caller.number, r.caller && r.caller.name].filter(Boolean).join(' · ') || '—'],
      ['Customer ID', (r.caller && r.caller.customer_id) || '—'],
      ['Agent', r.agent || '—'],
      ['Waited', r.wait_s ? fmtDur(r.wait_s) : '—'],
      ['Talked', r.talk_s ? fmtDur(r.talk_s) : '—'],
      ['Skill', r.skill || '—'],
      ['Disposition', DISPOSITION[r.disposition] || r.disposition || '—'],
      ['IVR choices', (r.ivr_choices || []).map((c) => `${c.node}: ${c.input}`).join(', ') || '—'],
      ['Call ID', r.call_id || '—'],
      ['Recording ID', r.id],
    ];
    if (r.notes) facts.push(['Notes', r.notes]);
    $('rec-meta').replaceChildren(...facts.map(([k, v]) => {
      const d = el('div', ['Notes', 'Call ID', 'Recording ID', 'IVR choices'].includes(k) ? 'wide' : '');
      d.append(el('dt', '', k), el('dd', '', v));
      return d;
    }));
  }

  function totalSeconds() {
    const r = S.rec.selected;
    const a = $('rec-audio');
    if (a && Number.isFinite(a.duration) && a.duration > 0) return a.duration;
    return r ? r.duration_s || 0 : 0;
  }

  function renderSegments(r) {
    const segs = r.segments || [];
    const total = totalSeconds() || Math.max(1, ...segs.map((s) => s.end_s || 0));
    const box = $('timeline-segments');
    box.replaceChildren(...segs.map((s) => {
      const kind = SEGMENT[s.kind] ? s.kind : 'other';
      const d = el('div', 'segment ' + kind);
      d.style.left = `${(100 * s.start_s) / total}%`;
      d.style.width = `${(100 * Math.max(0, s.end_s - s.start_s)) / total}%`;
      d.title = `${SEGMENT[s.kind] || s.kind} ${fmtDur(s.start_s)}–${fmtDur(s.end_s)}`;
      return d;
    }));
    $('segment-list').replaceChildren(...segs.map((s) => {
      const li = el('li');
      const b = el('button', '', '');
      b.type = 'button';
      const sw = el('span', 'swatch segment ' + (SEGMENT[s.kind] ? s.kind : 'other'));
      sw.style.position = 'static';
      b.append(sw, document.createTextNode(`${SEGMENT[s.kind] || s.kind} ${fmtDur(s.start_s)}`));
      b.title = 'Jump here';
      b.addEventListener('click', () => seek(s.start_s, true));
      li.append(b);
      return li;
    }));
    moveHead();
  }

  function seek(sec, play) {
    const a = $('rec-audio');
    a.currentTime = Math.max(0, sec);
    if (play) a.play().catch(() => {});
    moveHead();
  }

  function moveHead() {
    const total = totalSeconds();
    const a = $('rec-audio');
    $('timeline-head').style.left = total > 0 ? `${Math.min(100, (100 * a.currentTime) / total)}%` : '0';
  }

  // ---- Audit -------------------------------------------------------------

  async function loadAudit(offset) {
    try {
      const body = await api(`/api/v1/audit?offset=${offset}&limit=${S.audit.limit}`);
      Object.assign(S.audit, { offset: body.offset || 0, next: body.next_offset, total: body.total, items: body.entries || [] });
    } catch (e) {
      if (e.message !== 'signed out') fail('Audit trail: ' + e.message);
      return;
    }
    const rows = S.audit.items.map((e) => {
      const tr = el('tr');
      tr.append(td(fmtTime(e.at)), td(e.user || '—'), td(ACTION[e.action] || e.action), td(e.recording_id, 'mono'), td(e.remote_addr || '—', 'mono'));
      return tr;
    });
    $('audit-body').replaceChildren(...rows);
    show($('audit-empty'), rows.length === 0);
    const a = S.audit;
    text($('audit-count'), `(${a.total})`);
    text($('audit-page'), a.total ? `${a.offset + 1}–${a.offset + rows.length} of ${a.total}` : '');
    $('audit-newer').disabled = a.offset === 0;
    $('audit-older').disabled = a.next === null || a.next === undefined;
  }

  // ---- Top-level rendering ----------------------------------------------

  function render() {
    show($('login-view'), S.view === 'login');
    show($('console-view'), S.view === 'console');
    show($('who'), S.view === 'console');
    show($('tabs'), S.view === 'console');
    if (S.view !== 'console') {
      show($('banner-conn'), false);
      return;
    }
    text($('user-name'), (S.me && (S.me.display_name || S.me.name)) || '');
    const link = $('link-state');
    const ok = S.live && !S.unavailable;
    link.classList.toggle('ok', ok);
    link.classList.toggle('bad', !ok && S.everLive);
    text(link, ok ? 'live' : (S.everLive ? 'reconnecting…' : 'connecting…'));
    const lost = S.everLive && (!S.live || !!S.unavailable);
    show($('banner-conn'), lost);
    if (lost) text($('banner-conn-text'), S.unavailable ? `${S.unavailable}. The board shows the last figures.` : 'Reconnecting… The board shows the last figures.');
  }

  // ---- Wiring --------------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    for (const t of ['wallboard', 'recordings', 'audit']) $('tab-' + t).addEventListener('click', () => selectTab(t));
    window.addEventListener('hashchange', () => { const t = tabFromHash(); if (t && t !== S.tab && S.view === 'console') selectTab(t); });

    $('rec-filters').addEventListener('submit', searchRecordings);
    $('rec-clear').addEventListener('click', () => { $('rec-filters').reset(); searchRecordings(); });
    $('rec-older').addEventListener('click', () => { if (S.rec.next !== null) { S.rec.offset = S.rec.next; loadRecordings(); } });
    $('rec-newer').addEventListener('click', () => { S.rec.offset = Math.max(0, S.rec.offset - S.rec.limit); loadRecordings(); });

    const audio = $('rec-audio');
    for (const ev of ['timeupdate', 'seeked', 'loadedmetadata']) audio.addEventListener(ev, moveHead);
    audio.addEventListener('loadedmetadata', () => { if (S.rec.selected) renderSegments(S.rec.selected); });
    audio.addEventListener('error', () => { if (audio.getAttribute('src')) fail('The recording cannot be played (the server log says why).'); });
    $('timeline').addEventListener('click', (e) => {
      const box = e.currentTarget.getBoundingClientRect();
      seek(((e.clientX - box.left) / box.width) * totalSeconds(), false);
    });

    $('audit-newer').addEventListener('click', () => loadAudit(Math.max(0, S.audit.offset - S.audit.limit)));
    $('audit-older').addEventListener('click', () => { if (S.audit.next != null) loadAudit(S.audit.next); });
    $('audit-refresh').addEventListener('click', () => loadAudit(0));

    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && S.view === 'console') {
        if (!S.es) openStream();
        loadCalls();
      }
    });
    setInterval(tick, 1000);

    // What a test (or a curious supervisor in the console) may read.
    window.ivrdSupervisor = Object.freeze({
      get live() { return S.live; },
      get snapshots() { return S.snapshots; },
      get snapshot() { return S.snap; },
      get calls() { return S.calls; },
      get tab() { return S.tab; },
      get recordings() { return S.rec.items; },
      get selected() { return S.rec.selected; },
      get audit() { return S.audit.items; },
      get lastError() { return S.lastError; },
      selectTab,
      openRecording,
    });

    render();
    checkSession().then((ok) => { if (ok) showConsole(); });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
