(() => {
  const notice = document.getElementById('notice');
  const count = document.getElementById('count');
  const say = (html, error) => { notice.innerHTML = html; notice.className = 'show' + (error ? ' error' : ''); };
  const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
  const rows = () => document.querySelectorAll('tbody tr[data-alert-id]');
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const signIn = () => '<a href="/login?next=' + encodeURIComponent(window.location.pathname + window.location.search) + '">sign in again</a>';
  const recount = () => {
    const n = rows().length;
    count.textContent = n + (n === 1 ? ' open alert' : ' open alerts');
    if (n === 0) { const t = document.querySelector('table'); if (t) t.outerHTML = '<p class="empty">No open alerts.</p>'; }
  };
  document.querySelectorAll('select[data-filter]').forEach(s => s.addEventListener('change', () => s.form.submit()));
  document.addEventListener('click', async ev => {
    const b = ev.target.closest('button.ack');
    if (!b) return;
    const row = b.closest('tr');
    b.disabled = true; b.textContent = 'Acknowledging\u2026';
    try {
      const r = await fetch('/alerts/' + encodeURIComponent(b.dataset.alertId) + '/ack',
                            {method: 'POST', headers: {'X-Churnwatch-CSRF': csrf}, credentials: 'same-origin'});
      if (r.status === 401) {
        b.disabled = false; b.textContent = 'Acknowledge';
        say('Your session has ended: ' + signIn() + ', then acknowledge again.', true);
      } else if (r.ok || r.status === 404) {
        row.remove(); recount();
        say(r.ok ? 'Acknowledged the alert for <b>' + esc(row.dataset.customer) + '</b>.'
                 : 'The alert for <b>' + esc(row.dataset.customer) + '</b> was already closed.');
      } else {
        let msg = r.status + ' ' + r.statusText;
        try { msg = (await r.json()).error || msg; } catch (_) {}
        b.disabled = false; b.textContent = 'Acknowledge';
        say('Could not acknowledge: ' + esc(msg), true);
      }
    } catch (err) {
      b.disabled = false; b.textContent = 'Acknowledge';
      say('Could not reach the inbox server: ' + esc(err), true);
    }
  });
  // new alerts: tell the CSM instead of moving rows under their cursor
  setInterval(async () => {
    try {
      const r = await fetch('/api/alerts' + window.location.search, {credentials: 'same-origin'});
      if (r.status === 401) { say('Your session has ended: ' + signIn() + '.', true); return; }
      if (!r.ok) return;
      const shown = new Set(Array.from(rows(), tr => tr.dataset.alertId));
      const fresh = (await r.json()).filter(a => !shown.has(a.alert_id)).length;
      if (fresh > 0) say(fresh + (fresh === 1 ? ' new alert' : ' new alerts') + ' \u2014 <a href="">reload</a>');
    } catch (_) {}
  }, 15000);
})();
