// shoal dashboard: live updates of the Serve page, tokens, scaling and logs.
// Plain JavaScript, no dependencies. Markup comes from the server's templates; this
// script only swaps server-rendered fragments in and wires the controls.
'use strict';

(() => {
  const body = document.body;
  const layout = body.dataset.layout;
  if (!layout) return; // not the Serve page

  // Every state-changing call carries this header: a cross-site form cannot send it.
  const DASHBOARD_HEADER = { 'X-Shoal-Dashboard': '1' };
  const POLL_MS = 1000;
  const MASK = '••••••••••••••••••••••••••••••••';
  const PLACEHOLDER = '$SHOAL_TOKEN';

  const seen = new Map();   // fragment id → last HTML applied (uptimes blanked)
  const shown = new Map();  // application name → {id, token} while the token is shown
  let clockOffset = 0;      // server clock minus ours, for uptimes
  let timer = 0;

  // ---- small helpers ----

  const toastEl = document.getElementById('toast');
  let toastTimer = 0;
  function toast(text, bad) {
    toastEl.textContent = text;
    toastEl.classList.toggle('is-bad', !!bad);
    toastEl.classList.add('is-visible');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => toastEl.classList.remove('is-visible'), 3200);
  }

  function setLive(ok) {
    const el = document.getElementById('live');
    el.classList.toggle('is-down', !ok);
    el.querySelector('.live-text').textContent = ok ? 'Live' : 'Reconnecting…';
  }

  async function errorText(res) {
    try {
      const data = await res.json();
      if (data && data.error) return data.error;
    } catch (e) { /* not JSON */ }
    return 'HTTP ' + res.status + ' ' + res.statusText;
  }

  function appPanel(el) { return el.closest('[data-app]'); }

  // Same format as the server's uptime: 42s, 3m 12s, 5h 02m, 3d 4h.
  function since(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => String(n).padStart(2, '0');
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad(Math.floor(s / 60) % 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + (Math.floor(s / 3600) % 24) + 'h';
  }

  function tickUptimes() {
    const now = Date.now() + clockOffset;
    for (const el of document.querySelectorAll('time[data-since]')) {
      el.textContent = since(now - Number(el.dataset.since));
    }
  }

  // Uptimes change every second; they are ticked here, so a fragment whose only
  // change is an uptime is not swapped (which would steal focus from its buttons).
  const blankUptimes = (html) => html.replace(/(<time\b[^>]*\bdata-since="[^"]*"[^>]*>)[^<]*/g, '$1');

  // ---- live state ----

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms === undefined ? POLL_MS : ms);
  }

  async function poll() {
    if (document.hidden) return; // resumed by visibilitychange
    try {
      const res = await fetch('/dashboard/api/state', { credentials: 'same-origin', cache: 'no-store' });
      if (res.status === 401) { location.assign('/login'); return; }
      if (!res.ok) throw new Error(await errorText(res));
      const state = await res.json();
      if (state.layout !== layout) { location.reload(); return; }
      clockOffset = state.now - Date.now();
      apply(state.fragments);
      body.dataset.generation = String(state.generation);
      setLive(true);
    } catch (e) {
      setLive(false);
    }
    schedule();
  }

  function apply(fragments) {
    for (const [id, html] of Object.entries(fragments)) {
      const key = blankUptimes(html);
      if (seen.get(id) === key) continue;
      const el = document.getElementById(id);
      if (!el) continue;
      const focused = el.contains(document.activeElement) ? document.activeElement.id : '';
      el.innerHTML = html;
      seen.set(id, key);
      if (focused) {
        const again = document.getElementById(focused);
        if (again) again.focus();
      }
    }
    tickUptimes();
    syncScaleInputs();
    for (const [app, tok] of shown) {
      const panel = document.querySelector('.token-panel[data-app="' + CSS.escape(app) + '"]');
      const meta = panel && panel.querySelector('[data-token-id]');
      if (meta && meta.dataset.tokenId !== tok.id) refreshToken(app); // rotated elsewhere
    }
  }

  // A scale input follows the target until someone edits it.
  function syncScaleInputs() {
    for (const form of document.querySelectorAll('form.scale')) {
      const input = form.querySelector('input');
      if (input.dataset.dirty || document.activeElement === input) continue;
      const target = form.closest('.dep').querySelector('[data-field="target"]');
      if (target) input.value = target.textContent.trim();
    }
  }

  // ---- tokens ----

  async function fetchToken(app) {
    const res = await fetch('/dashboard/api/token?app=' + encodeURIComponent(app), { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401) { location.assign('/login'); throw new Error('signed out'); }
    if (!res.ok) throw new Error(await errorText(res));
    return res.json();
  }

  function showToken(panel, tok) {
    const app = panel.dataset.app;
    const value = panel.querySelector('.token-value');
    const button = panel.querySelector('[data-action="show-token"]');
    if (tok) {
      shown.set(app, tok);
      value.textContent = tok.token;
      value.dataset.masked = 'false';
      button.querySelector('span').textContent = 'Hide';
      button.setAttribute('aria-label', 'Hide the token of ' + app);
    } else {
      shown.delete(app);
      value.textContent = MASK;
      value.dataset.masked = 'true';
      button.querySelector('span').textContent = 'Show';
      button.setAttribute('aria-label', 'Show the token of ' + app);
    }
    for (const span of document.querySelectorAll('.tok[data-app-id="' + CSS.escape(panel.dataset.appId) + '"]')) {
      span.textContent = tok ? tok.token : PLACEHOLDER;
    }
  }

  async function refreshToken(app) {
    const panel = document.querySelector('.token-panel[data-app="' + CSS.escape(app) + '"]');
    if (!panel) return;
    try {
      showToken(panel, await fetchToken(app));
    } catch (e) {
      toast('Could not load the token: ' + e.message, true);
    }
  }

  async function toggleToken(button) {
    const panel = appPanel(button);
    if (shown.has(panel.dataset.app)) { showToken(panel, null); return; }
    button.disabled = true;
    try {
      showToken(panel, await fetchToken(panel.dataset.app));
    } catch (e) {
      toast('Could not load the token: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function copyToken(button) {
    const app = appPanel(button).dataset.app;
    try {
      const tok = shown.get(app) || await fetchToken(app);
      await copyText(tok.token);
      toast('Token of ' + app + ' copied');
    } catch (e) {
      toast('Could not copy the token: ' + e.message, true);
    }
  }

  async function rotateToken(button) {
    const panel = appPanel(button);
    const app = panel.dataset.app;
    const ok = window.confirm('Rotate the token of "' + app + '"?\n\n' +
      'The current token stops working at once. Every external scaler that uses it ' +
      'must be given the new one.');
    if (!ok) return;
    button.disabled = true;
    try {
      const res = await fetch('/api/v1/applications/' + encodeURIComponent(app) + '/token/rotate', {
        method: 'POST', credentials: 'same-origin', headers: DASHBOARD_HEADER,
      });
      if (!res.ok) throw new Error(await errorText(res));
      const wasShown = shown.has(app);
      const tok = await fetchToken(app);
      const meta = panel.querySelector('[data-token-id]');
      if (meta) {
        meta.dataset.tokenId = tok.id;
        const code = meta.querySelector('code');
        if (code) code.textContent = tok.id;
      }
      showToken(panel, wasShown ? tok : null);
      toast('Token of ' + app + ' rotated; the old one no longer works');
    } catch (e) {
      toast('Rotation failed: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function copySnippet(button) {
    const pre = document.getElementById(button.dataset.snippet);
    const app = appPanel(button).dataset.app;
    try {
      const tok = shown.get(app) || await fetchToken(app);
      const copy = pre.cloneNode(true);
      for (const span of copy.querySelectorAll('.tok')) span.textContent = tok.token;
      await copyText(copy.textContent);
      toast('Copied, with the token of ' + app);
    } catch (e) {
      toast('Could not copy: ' + e.message, true);
    }
  }

  // The Clipboard API needs a secure context (https or loopback) and focus; elsewhere
  // a hidden textarea and execCommand still work.
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return;
      } catch (e) { /* fall back */ }
    }
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'sr-only';
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) throw new Error('the browser refused to copy');
  }

  // ---- scaling ----

  async function scale(form) {
    const input = form.querySelector('input');
    const out = form.querySelector('output');
    const button = form.querySelector('button');
    const n = Number(input.value);
    out.className = 'scale-result';
    if (input.value.trim() === '' || !Number.isInteger(n) || n < 0) {
      out.classList.add('bad');
      out.textContent = 'Enter a whole number of replicas, 0 or more.';
      input.focus();
      return;
    }
    button.disabled = true;
    out.textContent = 'Scaling…';
    try {
      const res = await fetch(form.dataset.url, {
        method: 'POST', credentials: 'same-origin',
        headers: Object.assign({ 'Content-Type': 'application/json' }, DASHBOARD_HEADER),
        body: JSON.stringify({ target_num_replicas: n }),
      });
      if (!res.ok) throw new Error(await errorText(res));
      const data = await res.json();
      out.classList.add('ok');
      out.textContent = 'Target set to ' + data.target_num_replicas + ' (was ' + data.previous_target_num_replicas + ').';
      delete input.dataset.dirty;
      schedule(0);
    } catch (e) {
      out.classList.add('bad');
      out.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  }

  // ---- logs ----

  async function showLogs(dep, replica) {
    const panel = dep.querySelector('.logs');
    const pre = panel.querySelector('.logs-text');
    panel.dataset.replica = replica;
    panel.querySelector('.logs-title').textContent = 'Log of replica ' + replica + ' (last lines)';
    // Each deployment has these buttons; their names say whose log they act on.
    panel.querySelector('[data-action="logs-refresh"]').setAttribute('aria-label', 'Refresh the log of replica ' + replica);
    panel.querySelector('[data-action="logs-close"]').setAttribute('aria-label', 'Close the log of replica ' + replica);
    panel.hidden = false;
    pre.textContent = 'Loading…';
    const q = new URLSearchParams({ app: dep.dataset.app, dep: dep.dataset.dep, replica: replica });
    try {
      const res = await fetch('/dashboard/api/logs?' + q, { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw new Error(await errorText(res));
      const text = await res.text();
      pre.textContent = text || '(the log is empty)';
      pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      pre.textContent = 'Could not read the log: ' + e.message;
    }
  }

  // ---- wiring ----

  document.addEventListener('click', (ev) => {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    const dep = button.closest('.dep');
    switch (button.dataset.action) {
      case 'show-token': toggleToken(button); break;
      case 'copy-token': copyToken(button); break;
      case 'rotate-token': rotateToken(button); break;
      case 'copy-snippet': copySnippet(button); break;
      case 'logs': showLogs(dep, button.dataset.replica); break;
      case 'logs-refresh': showLogs(dep, dep.querySelector('.logs').dataset.replica); break;
      case 'logs-close': dep.querySelector('.logs').hidden = true; break;
    }
  });

  document.addEventListener('submit', (ev) => {
    const form = ev.target.closest('form.scale');
    if (!form) return;
    ev.preventDefault();
    scale(form);
  });

  document.addEventListener('input', (ev) => {
    if (ev.target.matches('form.scale input')) ev.target.dataset.dirty = '1';
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) schedule(0);
  });

  setInterval(tickUptimes, 1000);
  schedule(0);
})();
