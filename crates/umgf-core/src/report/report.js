// The tweet browser of a umgf report: reads the JSON data block, filters, pages and draws the
// tweets. Every tweet text goes in through textContent, never as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const PAGE_SIZE = 25;
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const key = (e) => e.start + ":" + e.end + ":" + e.type;
  const same = (a, b) => {
    const x = new Set(a.map(key));
    return a.length === b.length && b.every((e) => x.has(key(e)));
  };
  const isError = (t) => t.gold !== null && !same(t.gold, t.predicted);
  const differs = (t) => t.other !== null && t.other !== undefined && !same(t.other, t.predicted);

  for (const type of data.types) {
    const option = el("option", null, type);
    option.value = type;
    $("type").appendChild(option);
  }
  if (data.compare !== null) {
    $("differ-label").hidden = false;
    $("differ-label").title = "the other run: " + data.compare;
  }

  let page = 0;
  function visible() {
    const type = $("type").value;
    const find = $("find").value.trim().toLowerCase();
    return data.tweets.filter((t) => {
      if ($("errors-only").checked && !isError(t)) return false;
      if ($("images-only").checked && !t.image_src) return false;
      if ($("nodes-only").checked && t.nodes.length === 0) return false;
      if ($("differ-only").checked && !differs(t)) return false;
      if (type && ![...(t.gold || []), ...t.predicted].some((e) => e.type === type)) return false;
      if (find && !(t.id.toLowerCase().includes(find) || t.tokens.join(" ").toLowerCase().includes(find))) return false;
      return true;
    });
  }

  // One line of the tweet with `entities` highlighted; `gold` (if any) marks the wrong ones.
  function line(who, tokens, entities, gold) {
    const p = el("div", "line");
    p.appendChild(el("span", "who", who));
    const starts = new Map(entities.map((e) => [e.start, e]));
    const right = gold ? new Set(gold.map(key)) : null;
    for (let i = 0; i < tokens.length; ) {
      const e = starts.get(i);
      if (e) {
        const span = el("span", "ent " + e.type + (right && !right.has(key(e)) ? " wrong" : ""));
        span.appendChild(document.createTextNode(tokens.slice(e.start, e.end).join(" ")));
        span.appendChild(el("sub", null, e.type));
        p.appendChild(span);
        p.appendChild(document.createTextNode(" "));
        i = Math.max(e.end, i + 1);
      } else {
        p.appendChild(document.createTextNode(tokens[i] + " "));
        i += 1;
      }
    }
    return p;
  }

  const foundBy = (node) =>
    node.found_by.map((q) => q.kind + " \u201c" + q.text + "\u201d " + q.similarity.toFixed(2)).join(", ");

  function photo(t) {
    const box = el("div", "photo");
    const img = el("img");
    img.src = t.image_src;
    img.alt = "image of tweet " + t.id;
    box.appendChild(img);
    const sized = t.nodes.find((n) => n.image_size);
    if (sized) {
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", "0 0 " + sized.image_size[0] + " " + sized.image_size[1]);
      svg.setAttribute("preserveAspectRatio", "none");
      for (const n of t.nodes.filter((n) => n.bbox)) {
        const [x1, y1, x2, y2] = n.bbox;
        const rect = document.createElementNS(ns, "rect");
        Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "none", stroke: "#e03131", "stroke-width": 3 })
          .forEach(([k, v]) => rect.setAttribute(k, v));
        const title = document.createElementNS(ns, "title");
        title.textContent = n.label + " \u2190 " + foundBy(n);
        rect.appendChild(title);
        const label = document.createElementNS(ns, "text");
        Object.entries({ x: x1 + 4, y: y1 + 18, fill: "#e03131", "font-size": 18, "font-weight": "bold" })
          .forEach(([k, v]) => label.setAttribute(k, v));
        label.textContent = n.id + " " + n.label + " \u2190 " + n.found_by.map((q) => q.text).join(", ");
        svg.appendChild(rect);
        svg.appendChild(label);
      }
      box.appendChild(svg);
    }
    return box;
  }

  // Rows of gate cells: for each visual node and fusion layer, one cell per word.
  function gates(t) {
    const table = el("table", "gates");
    const head = el("tr");
    head.appendChild(el("th", null, "node \u00b7 layer"));
    for (const w of t.tokens) head.appendChild(el("th", "word", w));
    table.appendChild(head);
    t.nodes.forEach((node) => {
      t.gates.forEach((layer, l) => {
        const row = el("tr");
        row.appendChild(el("th", null, node.id + " " + node.label + " \u00b7 " + (l + 1)));
        const byWord = new Map();
        t.links.forEach(([w, o], i) => { if (o === node.id) byWord.set(w, layer[i]); });
        t.tokens.forEach((w, i) => {
          const cell = el("td");
          if (byWord.has(i)) {
            const g = byWord.get(i);
            cell.style.background = "rgba(200, 30, 30, " + g + ")";
            cell.title = w + " \u2190 " + node.label + ", layer " + (l + 1) + ": " + g.toFixed(3);
          }
          row.appendChild(cell);
        });
        table.appendChild(row);
      });
    });
    return table;
  }

  function tweet(t) {
    const li = el("li");
    li.dataset.id = t.id;
    li.appendChild(el("span", "tid", t.id + (isError(t) ? " \u00b7 error" : "")));
    if (t.gold !== null) li.appendChild(line("gold", t.tokens, t.gold, null));
    li.appendChild(line("predicted", t.tokens, t.predicted, t.gold));
    if (t.other) li.appendChild(line("other run", t.tokens, t.other, t.gold));
    const visual = el("div", "visual");
    if (t.image_src) visual.appendChild(photo(t));
    const words = el("div");
    if (t.caption) words.appendChild(el("div", "caption", "caption: " + t.caption));
    for (const n of t.nodes) words.appendChild(el("div", "node", n.kind + " node " + n.id + " \u201c" + n.label + "\u201d \u2190 " + foundBy(n)));
    if (t.nodes.length === 0) words.appendChild(el("div", "empty", "no visual nodes"));
    visual.appendChild(words);
    li.appendChild(visual);
    if (t.nodes.length > 0 && t.gates.length > 0) li.appendChild(gates(t));
    return li;
  }

  function draw() {
    const shown = visible();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    $("page").textContent = "page " + (page + 1) + " of " + pages + " (" + shown.length + " of " + data.tweets.length + " tweets)";
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
    const list = $("tweets");
    list.replaceChildren(...shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).map(tweet));
  }

  for (const id of ["errors-only", "type", "images-only", "nodes-only", "differ-only", "find"]) {
    $(id).addEventListener("input", () => { page = 0; draw(); });
  }
  $("prev").addEventListener("click", () => { page -= 1; draw(); });
  $("next").addEventListener("click", () => { page += 1; draw(); });
  draw();
})();
