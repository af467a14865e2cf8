// Live: stream the microphone to the WebSocket /v1/listen (float32 PCM at the page's sample rate) and show each hop
// the server answers: the top labels, the timeline of the last minute and the events in it. Uses app.js's helpers.
"use strict";

const SEND_SECONDS = 0.1;  // the worklet gives 128-frame blocks; send about 100 ms a message
const KEEP_SECONDS = 60;  // the live timeline shows the last minute, so a long session holds a bounded list
let live = null;

async function startLive() {
  const state = { blocks: [], held: 0, segments: [], events: [] };
  const microphone = await openMicrophone((block) => send(state, block));
  if (!microphone) return;
  const { stream, context } = microphone;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/listen?rate=${Math.round(context.sampleRate)}` +
                               `&encoding=float32&top_k=${TOP_K}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { if (token()) socket.send(JSON.stringify({ token: token() })); };  // before any audio
  Object.assign(state, { stream, context, socket });
  socket.onmessage = (event) => showHop(state, JSON.parse(event.data));
  socket.onclose = (event) => {
    if (event.code !== 1000) setStatus(event.reason || `the live stream closed (${event.code})`, true);
    stopLive(false);
    $("live-state").textContent = `stopped after ${(state.heard || 0).toFixed(1)} s`;
  };
  live = state;
  setStatus("");
  $("live").textContent = "■ Stop live";
  $("live").setAttribute("aria-pressed", "true");
  $("live-state").textContent = "listening… (the first labels after one window)";
  $("result").hidden = false;
  $("result-name").textContent = "Live: the microphone";
  $("labels-line").hidden = true;
  $("top").replaceChildren();
  showPictures(false);
  drawTimeline($("timeline"), [], 0);
  drawEvents($("events"), [], 0, 0);
}

function send(state, block) {
  state.blocks.push(block);
  state.held += block.length;
  if (!state.socket || state.held < state.context.sampleRate * SEND_SECONDS ||
      state.socket.readyState !== WebSocket.OPEN) return;
  const message = new Float32Array(state.held);
  let at = 0;
  for (const b of state.blocks) { message.set(b, at); at += b.length; }
  state.blocks = [];
  state.held = 0;
  state.socket.send(message.buffer);
}

function showHop(state, hop) {
  if (hop.error) { setStatus(hop.error, true); return; }
  state.heard = hop.time;
  if (!hop.end) {
    renderTop(hop.top, new Set((hop.labels || []).map((entry) => entry.label)));  // multi-label: the tags on now
    const best = hop.top[0] || { label: null, score: 0 };  // none: the open-set gate heard none of the classes
    if (best.label !== null) state.segments.push({ start: hop.start, end: hop.time, label: best.label, score: best.score });
  }
  const from = Math.max(0, hop.time - KEEP_SECONDS);
  state.segments = state.segments.filter((s) => s.end > from);
  state.events = state.events.concat(hop.events).filter((e) => e.offset > from);
  const underWay = hop.active.map((e) => ({ ...e, offset: hop.time }));
  drawTimeline($("timeline"), state.segments, hop.time);
  drawEvents($("events"), state.events.concat(underWay), state.segments.length ? state.segments[0].start : from,
             hop.time);
  $("live-state").textContent = hop.end ? `stopped after ${hop.time.toFixed(1)} s`
    : `${hop.time.toFixed(1)} s heard; ${hop.model_ms.toFixed(0)} ms a window`;
}

function stopLive(sayEnd = true) {
  if (!live) return;
  const { stream, context, socket } = live;
  live = null;
  stream.getTracks().forEach((track) => track.stop());
  context.close();
  if (sayEnd && socket.readyState === WebSocket.OPEN) socket.send("end");  // the last hops come, then the close
  $("live").textContent = "◉ Live";
  $("live").setAttribute("aria-pressed", "false");
}

$("live").addEventListener("click", () => (live ? stopLive() : startLive()));
