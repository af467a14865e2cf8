// The envsound page: send a file or a recording to /v1/predict and draw what comes back (live.js streams the
// microphone). No framework, no build step.
"use strict";

const TOP_K = 5;
const MAX_RECORD_SECONDS = 60;
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// A server that requires tokens: the page asks for one and keeps it for this tab (sessionStorage), never in a URL.
const TOKEN_KEY = "envsound-token";
const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

async function api(path, options = {}) {
  const answer = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (answer.status === 401) askForToken(token() ? "this token was refused: paste another" : "this server needs a token");
  return answer;
}

// A card of sounds to judge (Review, Detections): its buttons and keys, the same in both. y, n and u give a verdict,
// space plays the sound again, → or j moves on without one; keys typed into a field are the field's.
const CARD_BUTTONS = [["yes", "y", "yes"], ["no", "n", "no"], ["unsure", "u", "unsure"],
                      ["replay", "space", "play again"], ["skip", "→</kbd>/<kbd>j", "next"]];
const CARD_KEYS = { y: "yes", n: "no", u: "unsure" };

function cardButtons(view) {
  $(`${view}-buttons`).replaceChildren(...CARD_BUTTONS.map(([name, keys, text]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.testid = `${view}-${name}`;
    if (CARD_KEYS[keys]) button.dataset.verdict = name;
    else button.id = `${view}-${name}`;
    button.innerHTML = `<kbd>${keys}</kbd> ${text}`;
    return button;
  }));
}

function cardKeys(view, { verdict, replay, skip }) {
  document.addEventListener("keydown", (event) => {
    if ($(view).hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
    const key = event.key.toLowerCase();
    if (CARD_KEYS[key]) verdict(CARD_KEYS[key]);
    else if (event.key === " ") replay();
    else if (event.key === "ArrowRight" || key === "j") skip();
    else return;
    event.preventDefault();
  });
}

function askForToken(reason) {
  $("token-bar").hidden = false;
  $("token-reason").textContent = reason;
}

function wireToken() {
  $("token-bar").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    $("token-bar").hidden = true;
    showModel();
    document.dispatchEvent(new Event("envsound-token"));
  });
  fetch("/healthz").then((answer) => answer.json()).then((health) => {
    if (health.auth && !token()) askForToken("this server needs a token");
  }).catch(() => {});
}

let modelLabels = [];

async function showModel() {
  try {
    const answer = await api("/v1/model");
    const model = await answer.json();
    if (!answer.ok) throw new Error(model.error);
    modelLabels = model.labels;
    const kind = model.task && model.task.kind === "multi_label" ? "multi-label" : "single-label";
    $("model-line").textContent = `Model ${model.model}: ${model.labels.length} labels, ${kind}` +
      (model.training && model.training.dataset ? `, trained on ${model.training.dataset}` : "");
  } catch (err) {
    $("model-line").textContent = "the model's description could not be loaded";
  }
}

async function classify(blob, name) {
  $("top").replaceChildren();  // no top-label element exists until the new result is in
  $("result").hidden = true;
  setStatus(`Classifying ${name}…`);
  const form = new FormData();
  form.append("file", blob, name);
  let answer, body;
  try {
    answer = await api(`/v1/predict?top_k=${TOP_K}&segments=true&overview=true&events=true`,
                       { method: "POST", body: form });
    body = await answer.json();
  } catch (err) {
    setStatus(`${name}: the server did not answer (${err.message})`, true);
    return;
  }
  if (!answer.ok || body.error) {
    setStatus(body.error || `${name}: the server answered ${answer.status}`, true);
    return;
  }
  setStatus("");
  render(body);
}

function render(result) {
  $("result").hidden = false;
  $("result-name").textContent = result.file;
  const tagged = new Set((result.labels || []).map((entry) => entry.label));
  $("labels-line").hidden = !result.labels;
  if (result.labels) {
    $("labels-line").textContent = result.labels.length
      ? "Labels above threshold: " + result.labels.map((e) => `${e.label} (${e.score.toFixed(2)})`).join(", ")
      : "No label above its threshold";
  }
  renderTop(result.top, tagged);
  const overview = result.overview;
  showPictures(Boolean(overview));
  if (overview) {
    drawWaveform($("waveform"), overview.envelope);
    drawSpectrogram($("spectrogram"), overview.spectrogram);
    $("caption").textContent = `${overview.seconds.toFixed(1)} s; log-mel spectrogram as the model sees it ` +
      `(${overview.spectrogram.mels} mel bands, low frequencies at the bottom)`;
  }
  const seconds = overview ? overview.seconds : 0;
  drawTimeline($("timeline"), result.segments || [], seconds);
  drawEvents($("events"), result.events || [], 0, seconds);
}

function showPictures(shown) {
  $("waveform").hidden = $("spectrogram").hidden = !shown;
  if (!shown) $("caption").textContent = "";
}

function renderTop(top, tagged = new Set()) {
  const rows = top.map((entry) => {
    const row = document.createElement("li");
    row.dataset.testid = "top-label";
    row.classList.toggle("tagged", tagged.has(entry.label));
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${Math.round(entry.score * 100)}%`;
    const label = document.createElement("span");
    label.textContent = entry.label;
    const score = document.createElement("span");
    score.textContent = entry.score.toFixed(3);
    row.append(fill, label, score);
    return row;
  });
  if (!rows.length) {  // a model with an open-set gate that heard none of its classes
    const none = document.createElement("li");
    none.dataset.testid = "top-none";
    none.textContent = "none of the model's classes";
    rows.push(none);
  }
  $("top").replaceChildren(...rows);
}

function drawWaveform(canvas, envelope) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#2d6cdf";
  const step = width / Math.max(envelope.length, 1);
  envelope.forEach(([low, high], i) => {
    const top = (1 - high) * height / 2;
    const bottom = (1 - low) * height / 2;
    g.fillRect(i * step, top, Math.max(step, 1), Math.max(bottom - top, 1));
  });
}

// A perceptually ordered colour ramp (dark blue -> purple -> orange -> pale yellow), interpolated per byte value.
const RAMP = [[13, 8, 60], [84, 15, 109], [160, 40, 110], [227, 89, 51], [249, 180, 50], [252, 253, 191]];
const PALETTE = Array.from({ length: 256 }, (_, v) => {
  const x = v / 255 * (RAMP.length - 1), i = Math.min(Math.floor(x), RAMP.length - 2), t = x - i;
  return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * t));
});

function drawSpectrogram(canvas, spectrogram) {
  const { mels, columns } = spectrogram;
  const cells = Uint8Array.from(atob(spectrogram.values), (ch) => ch.charCodeAt(0));
  const image = new ImageData(columns, mels);
  for (let m = 0; m < mels; m++) {
    for (let c = 0; c < columns; c++) {
      const colour = PALETTE[cells[m * columns + c]];
      const at = ((mels - 1 - m) * columns + c) * 4;  // low mel bands at the bottom
      image.data.set([...colour, 255], at);
    }
  }
  const scratch = document.createElement("canvas");
  scratch.width = columns;
  scratch.height = mels;
  scratch.getContext("2d").putImageData(image, 0, 0);
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

function labelColour(label) {
  let hash = 0;
  for (const ch of label) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360}, 55%, 42%)`;
}

// One box per window, from its start to the next window's start: the top label of that stretch of the recording.
function drawTimeline(box, segments, seconds) {
  box.hidden = segments.length < 2;
  const pieces = segments.map((segment, i) => {
    const end = i + 1 < segments.length ? segments[i + 1].start : Math.max(seconds, segment.end);
    const piece = document.createElement("div");
    piece.dataset.testid = "segment";
    piece.style.flexGrow = String(Math.max(end - segment.start, 0.01));
    const label = segment.label ?? "none";  // null: none of the model's classes (its open-set gate)
    piece.style.background = segment.label === null ? "transparent" : labelColour(segment.label);
    piece.textContent = label;
    piece.title = `${segment.start.toFixed(1)}–${end.toFixed(1)} s: ${label} (${segment.score.toFixed(2)})`;
    return piece;
  });
  box.replaceChildren(...pieces);
}

// Events (label, onset, offset) as bars over the seconds from..to, one lane a label, under the timeline.
function drawEvents(box, events, from, to) {
  box.hidden = events.length === 0;
  const span = Math.max(to - from, 1e-3);
  const lanes = [...new Set(events.map((e) => e.label))];
  box.style.height = `${lanes.length * 1.5}rem`;
  box.replaceChildren(...events.map((event) => {
    const bar = document.createElement("div");
    bar.dataset.testid = "event";
    const onset = Math.max(event.onset, from);
    bar.style.left = `${(onset - from) / span * 100}%`;
    bar.style.width = `${Math.max(event.offset - onset, 0) / span * 100}%`;
    bar.style.top = `${lanes.indexOf(event.label) * 1.5}rem`;
    bar.style.background = labelColour(event.label);
    bar.textContent = event.label;
    bar.title = `${event.label}: ${event.onset.toFixed(1)}–${event.offset.toFixed(1)} s (${event.score.toFixed(2)})`;
    return bar;
  }));
}

// Recording: the browser's MediaRecorder makes WebM/Opus, which the server does not decode, so the page takes the
// raw samples from an AudioWorklet and writes a 16-bit PCM WAV file itself.
let recording = null;

// The microphone's mono samples, block by block, to onBlock (Float32Array); null (and a status line) when the page
// may not have it. Recording and Live (live.js) both listen through this.
async function openMicrophone(onBlock) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    setStatus(`No microphone: ${err.message} (browsers allow it only on localhost or HTTPS)`, true);
    return null;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/recorder-worklet.js");
  const node = new AudioWorkletNode(context, "pcm-recorder");
  node.port.onmessage = (event) => onBlock(event.data);
  const silent = context.createGain();
  silent.gain.value = 0;
  context.createMediaStreamSource(stream).connect(node).connect(silent).connect(context.destination);
  return { stream, context };
}

async function startRecording() {
  const chunks = [];
  const microphone = await openMicrophone((block) => chunks.push(block));
  if (!microphone) return;
  const { stream, context } = microphone;
  const timer = setTimeout(stopRecording, MAX_RECORD_SECONDS * 1000);
  recording = { stream, context, chunks, timer };
  $("record").textContent = "■ Stop";
  $("record").setAttribute("aria-pressed", "true");
  $("record-state").textContent = `recording… (at most ${MAX_RECORD_SECONDS} s)`;
}

async function stopRecording() {
  if (!recording) return;
  const { stream, context, chunks, timer } = recording;
  recording = null;
  clearTimeout(timer);
  stream.getTracks().forEach((track) => track.stop());
  await context.close();
  $("record").textContent = "● Record";
  $("record").setAttribute("aria-pressed", "false");
  $("record-state").textContent = "from the microphone, in this page";
  const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) { samples.set(chunk, at); at += chunk.length; }
  if (!samples.length) { setStatus("The recording is empty: nothing came from the microphone", true); return; }
  await classify(encodeWav(samples, context.sampleRate), "recording.wav");
}

function encodeWav(samples, sampleRate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((x, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 0x7fff, true));
  return new Blob([view], { type: "audio/wav" });
}

function wire() {
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) classify(file, file.name);
  });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) classify(file, file.name);
  });
  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
  document.querySelectorAll("nav button").forEach((tab) => tab.addEventListener("click", () => goTo(tab.dataset.view)));
  window.addEventListener("hashchange", route);
  // once every script has run (monitor.js and review.js listen for the view shown first)
  document.addEventListener("DOMContentLoaded", route);
  wireToken();
  showModel();
  cardButtons("review");
  cardButtons("fleet");
}

// The views: Classify (a file, a recording, live), Monitor (monitor.js: the deployment's sensors and events) and, on a
// server of an embeddings store, Review (review.js). Each has an address, #classify, #monitor, #review: a tab sets
// the address and the address shows the view, so a view can be linked to and the browser's back button returns to
// the view before. A server of an embeddings store opens on Review, a server of a model on Classify.
const shownViews = () => [...document.querySelectorAll("nav button")].filter((tab) => !tab.hidden);
const homeView = () => ($("tab-review").hidden ? "classify" : "review");

function goTo(view) {
  if (location.hash !== `#${view}`) location.hash = view;  // a history entry; hashchange shows it
}

function route() {
  const asked = location.hash.slice(1);
  const view = shownViews().some((tab) => tab.dataset.view === asked) ? asked : homeView();
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);  // no view there: say which is shown
  const tab = document.querySelector(`nav button[data-view="${view}"]`);
  if (tab.getAttribute("aria-selected") === "true" && !$(view).hidden) return;
  document.querySelectorAll("nav button").forEach((other) => {
    other.setAttribute("aria-selected", String(other === tab));
    $(other.dataset.view).hidden = other !== tab;
  });
  document.dispatchEvent(new CustomEvent("envsound-view", { detail: view }));
}

wire();
