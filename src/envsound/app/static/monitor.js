// Monitor: the deployment's sensors (online, last heard from, what they hear now) and a timeline of their events
// over the chosen hours or days, filtered by label; polled every few seconds, so new events appear without a reload.
// Reads GET /v1/sensors and GET /v1/events with the tab's token (app.js's api()).
// A fleet (envsound fleet publish): each sensor's model version beside its name, a version filter, and each version's
// events per sensor-hour by label side by side (a canary's old and new), from GET /v1/fleet/versions and
// GET /v1/fleet/rates; the controls and the table are made here, shown once a version is published. Beside each
// sensor's events, its precision per label from the verdicts on its random sample (GET /v1/review/precision: the
// Detections view's), where there is one.
"use strict";

const POLL_MS = 3000;
const PAGE = 10000;  // the API's largest page: a busy week beyond it shows its newest events, and says so
let monitorTimer = null;

async function refreshMonitor() {
  const seconds = Number($("monitor-range").value);
  const until = new Date();
  const from = new Date(until.getTime() - seconds * 1000);
  const label = $("monitor-label").value;
  const query = new URLSearchParams({ since: from.toISOString(), limit: String(PAGE) });
  if (label) query.set("label", label);
  const version = fleetControls().value;
  if (version) query.set("version", version);
  let sensors, events;
  try {
    const [sensorAnswer, eventAnswer] = await Promise.all([api("/v1/sensors"), api(`/v1/events?${query}`)]);
    sensors = await sensorAnswer.json();
    events = await eventAnswer.json();
    if (!sensorAnswer.ok || !eventAnswer.ok) throw new Error(sensors.error || events.error);
  } catch (err) {
    $("monitor-state").textContent = `could not read the store: ${err.message}`;
    return;
  }
  const full = events.events.length === PAGE ? ` (the newest ${PAGE})` : "";
  $("monitor-state").textContent = `${events.events.length} events${full}; updated ${until.toLocaleTimeString()}`;
  drawSensors(sensors.sensors, events.events);
  drawMonitorTimeline(sensors.sensors, events.events, from, until);
  refreshFleet(seconds / 3600);
  showPrecision();
}

// each sensor's precision per label beside its events' count
let precision = { found: [], at: 0 };

async function showPrecision() {
  if ($("tab-fleet").hidden) return;  // the server shows Detections when it keeps snippets (and so precision)
  // read every 30 s, not every poll (it reads every kept event's verdict), shown again on each redrawn table
  if (Date.now() - precision.at >= 30000) {
    try {
      const answer = await api("/v1/review/precision");
      if (!answer.ok) return;
      precision = { found: (await answer.json()).precision.filter((p) => p.precision != null), at: Date.now() };
    } catch (err) {
      return;
    }
  }
  const found = precision.found;
  document.querySelectorAll("#sensors tbody tr").forEach((row) => {
    row.querySelector(".sensor-precision")?.remove();
    const mine = found.filter((p) => p.sensor === row.dataset.sensor);
    if (!mine.length) return;
    const note = document.createElement("span");
    note.className = "sensor-precision hint";
    note.dataset.testid = "sensor-precision";
    note.textContent = " · precision " + mine.map((p) => `${p.label} ${p.precision.toFixed(2)} ` +
                                                         `(${p.low.toFixed(2)}-${p.high.toFixed(2)}, ${p.sampled})`)
      .join(", ");
    note.title = "from the verdicts on a random sample of its detections (the Detections view, sample order)";
    row.children[4].append(note);
  });
}

// the version filter, made once beside the label filter (hidden until a version is published)
function fleetControls() {
  let select = document.getElementById("monitor-version");
  if (select) return select;
  const label = document.createElement("label");
  label.id = "monitor-version-label";
  label.hidden = true;
  label.append("Version ");
  select = document.createElement("select");
  select.id = "monitor-version";
  select.dataset.testid = "monitor-version";
  select.add(new Option("all", ""));
  select.addEventListener("change", refreshMonitor);
  label.append(select);
  $("monitor-label").closest("label").after(label);
  return select;
}

async function refreshFleet(hours) {
  let versions, rates;
  try {
    const [versionAnswer, rateAnswer] = await Promise.all([
      api("/v1/fleet/versions"), api(`/v1/fleet/rates?${new URLSearchParams({ hours: String(hours) })}`)]);
    if (!versionAnswer.ok || !rateAnswer.ok) return;  // a server without a fleet: nothing to show
    versions = (await versionAnswer.json()).versions;
    rates = (await rateAnswer.json()).rates;
  } catch (err) {
    return;
  }
  const select = fleetControls();
  document.getElementById("monitor-version-label").hidden = versions.length === 0;
  versions.slice().reverse().forEach((v) => {
    if (![...select.options].some((o) => o.value === String(v.id))) {
      select.add(new Option(`${v.id} (${v.name}${v.note ? `: ${v.note}` : ""})`, String(v.id)));
    }
  });
  drawRates(versions.length ? rates : []);
}

// rows: labels; columns: the versions that heard something in the range; cells: events per sensor-hour
function drawRates(rates) {
  let table = document.getElementById("fleet-rates");
  if (!table) {
    table = document.createElement("table");
    table.id = "fleet-rates";
    table.dataset.testid = "fleet-rates";
    table.title = "events per sensor-hour heard by each version over the range: a canary's old and new side by side";
    $("sensors").after(table);
  }
  table.hidden = rates.length === 0;
  const name = (v) => (v === null ? "own model" : `version ${v}`);
  const columns = [...new Set(rates.map((r) => r.version))];
  const labels = [...new Set(rates.map((r) => r.label))].sort();
  const head = document.createElement("tr");
  ["events per sensor-hour", ...columns.map(name)].forEach((text) => {
    const cell = document.createElement("th");
    cell.textContent = text;
    head.append(cell);
  });
  table.replaceChildren(head, ...labels.map((label) => {
    const row = document.createElement("tr");
    row.dataset.testid = "rate";
    [label, ...columns.map((v) => {
      const found = rates.find((r) => r.label === label && r.version === v);
      return found ? `${found.per_sensor_hour.toFixed(2)} (${found.events} from ${found.sensors})` : "–";
    })].forEach((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    });
    return row;
  }));
}

function drawSensors(sensors, events) {
  const counts = {};
  events.forEach((e) => { counts[e.sensor] = (counts[e.sensor] || 0) + 1; });
  $("sensors").querySelector("tbody").replaceChildren(...sensors.map((sensor) => {
    const row = document.createElement("tr");
    row.dataset.testid = "sensor";
    row.dataset.sensor = sensor.name;
    const cells = [sensor.name, "", new Date(sensor.last_received).toLocaleString(),
                   sensor.label ? `${sensor.label} ${sensor.score != null ? sensor.score.toFixed(2) : ""}` : "–",
                   String(counts[sensor.name] || 0)];
    cells.forEach((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    });
    const dot = document.createElement("span");
    dot.className = sensor.online ? "dot online" : "dot";
    dot.title = sensor.online ? "online" : "not heard from lately";
    row.children[1].append(dot);
    if (sensor.version != null || sensor.refused) {  // a fleet's: the version it runs, and a version it refused
      const version = document.createElement("span");
      version.className = "sensor-version";
      version.dataset.testid = "sensor-version";
      version.textContent = sensor.version != null ? ` · v${sensor.version}` : "";
      version.title = sensor.version != null
        ? `runs model version ${sensor.version} since ${new Date(sensor.version_since).toLocaleString()}` : "";
      if (sensor.refused) {
        version.textContent += " · refused a version";
        version.title += `${version.title ? "; " : ""}${sensor.refused.line}`;
      }
      row.children[0].append(version);
    }
    if (sensor.clock) {  // the server compares the sensor's clock with its own at each report
      const clock = document.createElement("span");
      clock.className = "clock-off";
      clock.dataset.testid = "clock-off";
      clock.textContent = ` ${sensor.clock}`;
      clock.title = "this sensor's event times come from its clock; each event's received time is the server's";
      row.children[2].append(clock);
    }
    return row;
  }));
}

function drawMonitorTimeline(sensors, events, from, until) {
  $("axis-from").textContent = from.toLocaleString();
  $("axis-to").textContent = until.toLocaleString();
  const span = until - from;
  $("monitor-timeline").replaceChildren(...sensors.map((sensor) => {
    const row = document.createElement("div");
    row.className = "sensor-row";
    const name = document.createElement("span");
    name.textContent = sensor.name;
    const track = document.createElement("div");
    track.className = "sensor-track";
    track.dataset.sensor = sensor.name;
    events.filter((e) => e.sensor === sensor.name).forEach((e) => {
      // clamped to the range: an event may start before it, or end after now by the sensor's clock
      const onset = Math.min(Math.max(new Date(e.onset) - from, 0), span);
      const offset = Math.min(Math.max(new Date(e.offset) - from, onset), span);
      const bar = document.createElement("div");
      bar.dataset.testid = "monitor-event";
      bar.style.left = `${(100 * onset) / span}%`;
      bar.style.width = `${(100 * Math.max(offset - onset, 0)) / span}%`;
      bar.style.background = labelColour(e.label);
      bar.textContent = e.label;
      bar.title = `${e.label} ${e.score.toFixed(2)}: ${new Date(e.onset).toLocaleString()} – ` +
                  `${new Date(e.offset).toLocaleTimeString()}`;
      track.append(bar);
    });
    row.append(name, track);
    return row;
  }));
}

function fillLabels() {
  const select = $("monitor-label");
  if (select.options.length > 1) return;
  modelLabels.forEach((label) => select.add(new Option(label, label)));
}

document.addEventListener("envsound-view", (event) => {
  clearInterval(monitorTimer);
  if (event.detail !== "monitor") return;
  fillLabels();
  refreshMonitor();
  monitorTimer = setInterval(refreshMonitor, POLL_MS);
});
document.addEventListener("envsound-token", () => { if (!$("monitor").hidden) refreshMonitor(); });
["monitor-range", "monitor-label"].forEach((id) => $(id).addEventListener("change", refreshMonitor));
