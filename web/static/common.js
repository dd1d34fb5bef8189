// Shared by the agent and supervisor pages.
'use strict';

window.ivrdCommon = {
  // signIn posts the credentials to /api/v1/login. It resolves to
  // {status, body} (status 0 when ivrd could not be reached).
  async signIn(user, pass) {
    let res;
    try {
      res = await fetch('/api/v1/login', {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: user, password: pass }),
      });
    } catch (_) {
      return { status: 0, body: {} };
    }
    let body = {};
    try { body = await res.json(); } catch (_) { body = {}; }
    return { status: res.status, body };
  },
};
