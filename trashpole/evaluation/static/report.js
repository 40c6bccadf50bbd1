// trashpole report.html: tabs, the image browser (filters, sorting, keyboard) and the viewer.
// The per-image data is the JSON in #report-data, written by trashpole/evaluation/html_report.py.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var images = data.images;
  var cards = [];      // image index -> its card element (built once)
  var order = [];      // image indices shown, in display order
  var selected = -1;   // position in order of the selected card, -1: none
  var byId = function (id) { return document.getElementById(id); };
  var classFilter = byId("filter-class");
  var problemFilter = byId("filter-problem");
  var sortBy = byId("sort");
  var viewer = byId("viewer");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function num(v, digits) { return v === null ? "n/a" : v.toFixed(digits === undefined ? 1 : digits); }

  function className(k) { return k >= 0 && k < data.classes.length ? data.classes[k] : "?"; }

  function swatch(k) { return el("span", { "class": "swatch", style: "background:" + data.colors[k] }); }

  function picture(img, layer, caption, lazy) {
    var attrs = { width: img.w, height: img.h, alt: caption + " " + img.name, decoding: "async" };
    if (lazy) attrs.loading = "lazy";
    var photo = el("img", Object.assign({ src: img.pic + ".jpg", "class": "photo" }, attrs));
    var overlay = el("img", Object.assign({ src: img.pic + "_" + layer + ".png", "class": "overlay" }, attrs));
    return el("figure", { "class": "pic" }, [photo, overlay, el("figcaption", { text: caption })]);
  }

  function describeObject(g, k) {
    var cls = g[0], iou = g[1], pred = g[2], outcome = g[3];
    var text = outcome === "missed" ? "missed"
      : outcome === "wrong class" ? "predicted as " + className(pred) + ", IoU " + num(iou)
      : outcome + ", IoU " + num(iou);
    return el("li", { "class": "obj-" + outcome.replace(" ", "-") },
      [swatch(cls), className(cls) + ": " + text]);
  }

  function info(img) {
    var line = "mean IoU " + num(img.miou) + " \u00b7 TP " + img.TP + " \u00b7 FP " + img.FP +
      " \u00b7 FN " + img.FN;
    var parts = [
      el("div", { "class": "metrics", text: line }),
      el("div", { text: img.num_gt + " objects, " + img.num_pred + " counted predictions" +
        (img.num_ignored ? ", " + img.num_ignored + " ignored (crowd)" : "") }),
    ];
    if (img.gt.length) parts.push(el("ol", {}, img.gt.map(describeObject)));
    if (img.false.length) {
      var counts = data.classes.map(function (_, c) {
        return img.false.filter(function (f) { return f === c; }).length;
      });
      parts.push(el("div", { text: "false detections: " + counts.map(function (n, c) {
        return n ? n + " " + className(c) : "";
      }).filter(Boolean).join(", ") }));
    }
    if (img.pred.length) {
      var top = img.pred.slice(0, 8).map(function (p) {
        return className(p[0]) + " " + (100 * p[1]).toFixed(0);
      });
      if (img.pred.length > top.length) top.push("and " + (img.pred.length - top.length) + " more");
      parts.push(el("div", { "class": "preds", text: "predictions (score %): " + top.join(", ") }));
    }
    return el("div", { "class": "info" }, parts);
  }

  function badges(img) {
    if (!img.problems.length) return [el("span", { "class": "badge ok", text: "no problem" })];
    return img.problems.map(function (p) {
      return el("span", { "class": "badge", text: data.problems[p[0]].split(" (")[0] + ": " + className(p[1]) });
    });
  }

  function title(img) {
    return el("h3", { title: img.path }, [
      el("span", { "class": "rank", text: "#" + (img.rank + 1) }), img.name + " "
    ].concat(badges(img)));
  }

  function buildCard(img, index) {
    var card = el("article", { "class": "card", "data-index": index, tabindex: "-1" }, [
      title(img),
      picture(img, "truth", "ground truth", true),
      picture(img, "pred", "prediction", true),
      info(img),
    ]);
    card.addEventListener("click", function () { select(order.indexOf(index)); });
    card.addEventListener("dblclick", openViewer);
    return card;
  }

  function matches(img) {
    var cls = classFilter.value === "" ? null : Number(classFilter.value);
    var problem = problemFilter.value;
    var hasClass = function (c) { return cls === null || c === cls; };
    if (problem === "all") return cls === null || img.classes.indexOf(cls) >= 0;
    if (problem === "none") return !img.problems.length && (cls === null || img.classes.indexOf(cls) >= 0);
    return img.problems.some(function (p) { return (problem === "any" || p[0] === problem) && hasClass(p[1]); });
  }

  function compare(a, b) {
    if (sortBy.value === "best") return images[b].rank - images[a].rank;
    if (sortBy.value === "name") return images[a].name < images[b].name ? -1 : images[a].name > images[b].name ? 1 : a - b;
    return images[a].rank - images[b].rank;
  }

  function render() {
    var keep = selected >= 0 ? order[selected] : -1;
    order = images.map(function (_, k) { return k; }).filter(function (k) { return matches(images[k]); });
    order.sort(compare);
    var box = byId("cards");
    box.replaceChildren.apply(box, order.map(function (k) { return cards[k]; }));
    byId("count").textContent = order.length + " of " + images.length + " images";
    selected = -1;
    select(order.indexOf(keep), true);
  }

  function select(pos, quiet) {
    if (selected >= 0 && cards[order[selected]]) cards[order[selected]].classList.remove("selected");
    selected = pos >= 0 && pos < order.length ? pos : -1;
    if (selected < 0) return;
    var card = cards[order[selected]];
    card.classList.add("selected");
    if (!quiet) card.scrollIntoView({ block: "nearest" });
    if (!viewer.hidden) fillViewer();
  }

  function move(step) {
    if (!order.length) return;
    select(selected < 0 ? 0 : Math.min(Math.max(selected + step, 0), order.length - 1));
  }

  function fillViewer() {
    var img = images[order[selected]];
    var close = el("span", { "class": "close", text: "close (Esc)" });
    close.addEventListener("click", closeViewer);
    viewer.replaceChildren(close, title(img),
      el("div", { "class": "pics" }, [picture(img, "truth", "ground truth", false),
        picture(img, "pred", "prediction", false)]),
      info(img),
      el("p", { "class": "rank", text: (selected + 1) + " of " + order.length + " shown; \u2190/\u2192 previous/next" }));
  }

  function openViewer() {
    if (!order.length) return;
    if (selected < 0) select(0, true);
    viewer.hidden = false;
    fillViewer();
  }

  function closeViewer() { viewer.hidden = true; }

  function setMasks(on) {
    byId("show-masks").checked = on;
    document.body.classList.toggle("no-masks", !on);
  }

  function showTab() {
    var tab = location.hash === "#images" ? "images" : "metrics";
    document.querySelectorAll("section.tab").forEach(function (s) { s.hidden = s.id !== "tab-" + tab; });
    document.querySelectorAll(".tabs a").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-tab") === tab);
    });
    return tab;
  }

  function onKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey || showTab() !== "images") return;
    var tag = e.target && e.target.tagName;
    if (tag === "INPUT" && e.target.type === "text") return;
    if (tag === "SELECT" && /^(Arrow|Enter| )/.test(e.key)) return;  // the select's own keys
    switch (e.key) {
      case "j": case "ArrowRight": move(1); break;
      case "k": case "ArrowLeft": move(-1); break;
      case "Enter": if (viewer.hidden) openViewer(); else closeViewer(); break;
      case "Escape": closeViewer(); break;
      case "m": setMasks(document.body.classList.contains("no-masks")); break;
      default: return;
    }
    e.preventDefault();
  }

  // A click on a cell of report.md's confusion table shows the images behind it.
  function linkConfusionTable() {
    var heading = Array.prototype.find.call(document.querySelectorAll("#tab-metrics h2"),
      function (h) { return /^Confusion matrix/.test(h.textContent); });
    var table = heading && heading.nextElementSibling;
    if (!table || table.tagName !== "TABLE") return;
    var index = function (text, prefix) {
      var name = text.trim().replace(prefix, "");
      return name === "background" ? data.classes.length : data.classes.indexOf(name);
    };
    var cols = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return index(c.textContent, "pred "); });
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var t = index(row.cells[0].textContent, "true ");
      Array.prototype.forEach.call(row.cells, function (cell, j) {
        var p = cols[j], bg = data.classes.length;
        if (j === 0 || t < 0 || p < 0 || (t === bg && p === bg)) return;
        var filter = t === p ? ["all", t] : p === bg ? ["missed", t] : t === bg ? ["false", p] : ["wrong", t];
        cell.classList.add("link");
        cell.title = "show these images";
        cell.addEventListener("click", function () {
          classFilter.value = String(filter[1]);
          problemFilter.value = filter[0];
          location.hash = "#images";
          render();
        });
      });
    });
  }

  cards = images.map(buildCard);
  linkConfusionTable();
  [classFilter, problemFilter, sortBy].forEach(function (s) { s.addEventListener("change", render); });
  byId("show-masks").addEventListener("change", function (e) { setMasks(e.target.checked); });
  viewer.addEventListener("click", function (e) { if (e.target === viewer) closeViewer(); });
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", showTab);
  showTab();
  render();
  // for tests and benchmarks: what is shown, in order, and which image is selected
  window.trashpoleReport = {
    shown: function () { return order.slice(); },
    selected: function () { return selected >= 0 ? order[selected] : null; },
    viewerOpen: function () { return !viewer.hidden; },
    readyMs: performance.now(),  // ms from navigation start to the built page
  };
  document.body.setAttribute("data-ready", "true");
})();
