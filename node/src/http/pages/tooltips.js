// The home page's one script: a tile's name or description gets its text
// again as a tooltip only where it is cut, by the line clamp at the width
// it is drawn at or by the server (`data-cut`, past its character limit).
// Decided after layout, and again when the tiles are laid out anew.
(() => {
  const tiles = document.querySelector('.tiles');
  if (!tiles) return;
  const mark = () => {
    for (const el of tiles.querySelectorAll('.name, .desc')) {
      const cut = el.hasAttribute('data-cut')
        || el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
      if (cut) el.title = el.textContent;
      else el.removeAttribute('title');
    }
    tiles.dataset.tooltips = 'ready';
  };
  let frame = 0;
  const later = () => { cancelAnimationFrame(frame); frame = requestAnimationFrame(mark); };
  new ResizeObserver(later).observe(tiles);
  if (document.fonts) document.fonts.ready.then(later);
})();
