// detforge serve page: one upload per image at the server's low threshold (info.page_conf);
// the slider then filters those boxes here (score > slider, as the server's threshold), so
// moving it sends no request. The boxes drawn are kept in the canvas's data-boxes attribute
// ([[x1, y1, x2, y2, score, class], ...] in image pixels) for scripts and tests.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;    // GET /info
let result = null;  // the last POST /predict answer
let bitmap = null;  // the last image, as the browser decoded it

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function draw() {
  const canvas = $("view");
  const conf = Number($("conf").value);
  $("conf-value").textContent = conf.toFixed(2);
  if (!result || !bitmap) return;
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  // boxes are in the pixels the server decoded; scale if the browser's decode differs
  const sx = bitmap.width / result.width, sy = bitmap.height / result.height;
  const lw = Math.max(1, Math.round((bitmap.width + bitmap.height) / 600));
  ctx.lineWidth = lw;
  ctx.font = `${10 + 2 * lw}px sans-serif`;
  ctx.textBaseline = "bottom";
  const shown = [];
  result.scores.forEach((score, i) => {
    if (!(score > conf)) return;
    const [x1, y1, x2, y2] = result.boxes[i];
    const c = result.classes[i];
    const color = info.colors[c % info.colors.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    const label = `${result.names[i]} ${score.toFixed(2)}`;
    const tw = ctx.measureText(label).width + 4, th = 12 + 2 * lw;
    const ly = Math.max(th, y1 * sy);
    ctx.fillStyle = color;
    ctx.fillRect(x1 * sx, ly - th, tw, th);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x1 * sx + 2, ly);
    shown.push([x1, y1, x2, y2, score, c]);
  });
  canvas.dataset.boxes = JSON.stringify(shown);
  setStatus(`${shown.length} of ${result.scores.length} boxes above ${conf.toFixed(2)}; ` +
            `${result.width}x${result.height}, ${result.latency_ms} ms detection, ` +
            `${result.total_ms} ms on the server`);
  document.body.dataset.state = "drawn";
}

async function upload(file) {
  if (!file) return;
  document.body.dataset.state = "uploading";
  setStatus(`detecting in ${file.name}...`);
  const form = new FormData();
  form.append("file", file);
  try {
    const resp = await fetch(`predict?conf=${info.page_conf}`, { method: "POST", body: form });
    const body = await resp.json();
    if (!resp.ok) {
      result = null;
      document.body.dataset.state = "error";
      setStatus(`${resp.status}: ${body.detail}`, true);
      return;
    }
    bitmap = await createImageBitmap(file);
    result = body;
    draw();
  } catch (err) {
    document.body.dataset.state = "error";
    setStatus(`failed: ${err}`, true);
  }
}

async function init() {
  info = await (await fetch("info")).json();
  $("model").textContent = `${info.model}: ${info.names.length} classes`;
  const slider = $("conf");
  slider.min = info.page_conf;
  slider.value = info.conf;
  $("legend").replaceChildren(...info.names.map((name, c) => {
    const li = document.createElement("li");
    li.textContent = name;
    li.style.setProperty("--c", info.colors[c % info.colors.length]);
    return li;
  }));
  slider.addEventListener("input", draw);
  $("file").addEventListener("change", (e) => upload(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  $("conf-value").textContent = Number(slider.value).toFixed(2);
  document.body.dataset.state = "ready";
}

init().catch((err) => setStatus(`cannot reach the server: ${err}`, true));
