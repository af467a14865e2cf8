// Detections: review what the fleet's sensors heard, by ear. The events whose sound the server keeps (sensors sending
// snippets: listen --snippets) come one at a time, filtered by label, sensor and score band, newest first or in each
// sensor's random-sample order (GET /v1/review/events); y, n or u gives a verdict on the event's label (POST
// /v1/review/verdicts), space plays it again, → or j moves on without one. Below, each sensor's precision per label
// from the verdicts on its random sample (GET /v1/review/precision), refreshed after every verdict.
"use strict";

const FLEET_BATCH = 10;
const fleet = { queue: [], at: 0, url: null, skipped: new Set(), busy: Promise.resolve() };

function fleetStatus(text, isError = false) {
  $("fleet-status").textContent = text;
  $("fleet-status").classList.toggle("error", isError);
}

function fleetQuery() {
  const query = new URLSearchParams({ k: String(FLEET_BATCH) });
  for (const [name, id] of [["label", "fleet-label"], ["sensor", "fleet-sensor"], ["low", "fleet-low"],
                            ["high", "fleet-high"]]) {
    const value = $(id).value.trim();
    if (value) query.set(name, value);
  }
  if ($("fleet-order").value === "sample") query.set("sample", "true");
  return query;
}

async function fleetJson(path, options) {
  const answer = await api(path, options);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

// the next events to review (those skipped this time left out), the first shown
async function loadFleet() {
  let body;
  try {  // asks for those skipped too (the server does not know them), so that a skipped batch does not hide the rest
    const query = fleetQuery();
    query.set("k", String(Math.min(FLEET_BATCH + fleet.skipped.size, 100)));
    body = await fleetJson(`/v1/review/events?${query}`);
  } catch (err) {
    $("fleet-card").hidden = true;
    return fleetStatus(`could not read the events: ${err.message}`, true);
  }
  fleet.queue = body.events.filter((e) => !fleet.skipped.has(e.event)).slice(0, FLEET_BATCH);
  fleet.at = 0;
  if (!fleet.queue.length) {
    $("fleet-card").hidden = true;
    return fleetStatus(body.left ? "Every event left was skipped: Review again to see them."
      : "No event with its sound kept is left to review for these filters (sensors send it with listen --snippets).");
  }
  fleetStatus(`${body.left} event(s) with their sound kept and no verdict yet`);
  await showFleetEvent();
}

async function showFleetEvent() {
  const e = fleet.queue[fleet.at];
  $("fleet-card").hidden = false;
  $("fleet-where").textContent = `${e.sensor} · ${e.label} · ${new Date(e.onset).toLocaleString()}`;
  $("fleet-score").textContent = `score ${e.score.toFixed(3)}; the event is ${e.start.toFixed(1)}-` +
    `${e.end.toFixed(1)} s of its sound` + (e.version == null ? "" : `; heard by model version ${e.version}`);
  if (fleet.url) URL.revokeObjectURL(fleet.url);
  fleet.url = null;
  try {  // fetched with the tab's token (an <audio src> cannot send it), played from memory
    const answer = await api(e.audio);
    if (!answer.ok) throw new Error((await answer.json()).error || answer.statusText);
    fleet.url = URL.createObjectURL(await answer.blob());
    $("fleet-audio").src = fleet.url;
    $("fleet-audio").play().catch(() => {});  // a browser may refuse to play before a click: the controls remain
  } catch (err) {
    fleetStatus(`could not fetch the sound of event ${e.event}: ${err.message}`, true);
  }
}

async function giveFleetVerdict(verdict) {
  const e = fleet.queue[fleet.at];
  if (!e || $("fleet-card").hidden) return;
  try {
    await fleetJson("/v1/review/verdicts", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify({ event: e.event, verdict }) });
  } catch (err) {
    return fleetStatus(`the verdict was not kept: ${err.message}`, true);
  }
  fleetStatus(`${e.label} at ${e.sensor}: ${verdict}`);
  await nextFleetEvent();
  loadPrecision();
}

async function nextFleetEvent() {
  fleet.at += 1;
  if (fleet.at < fleet.queue.length) return showFleetEvent();
  return loadFleet();
}

async function loadPrecision() {
  let body;
  try {
    body = await fleetJson("/v1/review/precision");
  } catch (err) {
    return fleetStatus(`could not read the precision: ${err.message}`, true);
  }
  $("fleet-precision").querySelector("tbody").replaceChildren(...body.precision.map((p) => {
    const row = document.createElement("tr");
    row.dataset.testid = "fleet-precision-row";
    const shown = p.precision == null ? "not yet: review its random sample"
      : `${p.precision.toFixed(3)} (${p.low.toFixed(3)}-${p.high.toFixed(3)})`;
    for (const text of [p.sensor, p.label, shown, `${p.sampled} (${p.yes} yes, ${p.no} no)`, String(p.events)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

// one action at a time: a key held down must not give two verdicts to one event
function fleetAction(action) {
  fleet.busy = fleet.busy.then(action, action);
}

$("fleet-start").addEventListener("submit", (event) => {
  event.preventDefault();
  fleet.skipped.clear();
  fleetAction(loadFleet);
});
document.querySelectorAll("#fleet-buttons [data-verdict]").forEach((button) =>
  button.addEventListener("click", () => fleetAction(() => giveFleetVerdict(button.dataset.verdict))));
$("fleet-replay").addEventListener("click", () => { $("fleet-audio").currentTime = 0; $("fleet-audio").play(); });
$("fleet-skip").addEventListener("click", () => fleetAction(skipFleetEvent));

function skipFleetEvent() {
  const e = fleet.queue[fleet.at];
  if (e) fleet.skipped.add(e.event);
  return nextFleetEvent();
}

cardKeys("fleet", { verdict: (said) => fleetAction(() => giveFleetVerdict(said)),
                    replay: () => $("fleet-replay").click(), skip: () => fleetAction(skipFleetEvent) });

document.addEventListener("envsound-view", (event) => {
  if (event.detail === "fleet") loadPrecision();
});
document.addEventListener("envsound-token", () => {  // a token given on this view: read what it refused before
  if (!$("fleet").hidden) loadPrecision();
});
