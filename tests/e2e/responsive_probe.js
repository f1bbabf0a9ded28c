// What sticks out of the viewport, and which tables hide what they are about
// (tests/e2e/test_responsive.py evaluates this in each page).
() => {
  const W = document.documentElement.clientWidth;
  const problems = [];
  const doc = document.documentElement.scrollWidth;
  if (doc > W + 1) problems.push(`document is ${doc}px wide`);
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
    ' "' + (el.textContent || '').trim().slice(0, 30) + '"';
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;
    if ((r.right > W + 1 || r.left < -1) && !scrolls(el)) {
      if (!out.some((o) => o.contains(el))) out.push(el);
    }
  }
  out.slice(0, 5).forEach((el) => problems.push(`sticks out: ${name(el)}`));
  const em = parseFloat(getComputedStyle(document.body).fontSize);
  const shown = (c) => getComputedStyle(c).display !== 'none';
  for (const table of document.querySelectorAll('main table')) {
    const t = table.getBoundingClientRect();
    if (t.width === 0) continue;
    // A table of cards (site.css, phones) hides its header row: its first row's cells
    // stand for the columns, each with its label.
    const thead = table.querySelector('thead');
    const cards = thead && !shown(thead);
    const head = cards ? table.querySelector('tbody tr') : table.querySelector('tr');
    if (!head) continue;
    const cells = [...head.children];
    const marked = (thead ? [...thead.querySelectorAll('th')] : cells)
      .map((c, i) => c.classList.contains('key') ? i : -1).filter((i) => i >= 0);
    const first = cells.findIndex(shown);
    const keys = cells.filter((c, i) => i === first || marked.includes(i));
    for (const cell of keys) {
      const r = cell.getBoundingClientRect();
      if (r.width === 0) { problems.push(`key column hidden: ${name(cell)}`); continue; }
      if (r.left < -1 || r.right > W + 1) problems.push(`key column off-screen: ${name(cell)} at ${Math.round(r.left)}-${Math.round(r.right)}px`);
      if (r.width < 3 * em && cell.textContent.trim()) problems.push(`key column ${Math.round(r.width)}px wide: ${name(cell)}`);
    }
  }
  return problems;
}
