// Review: one key a verdict on the windows of an embeddings store (envsound serve DB). Choose a label; the page shows
// a candidate's spectrogram (a PNG the server draws) and plays its sound; y / n / u give a verdict and move on, space
// plays it again, → or j moves on without one. Every 10 verdicts (a round) the page learns the label and asks about
// the windows the learned model is least sure of. A label with no candidates asks for an example first. The other
// mode reviews check's random sample of the windows at or above the label's threshold (POST /api/review/check): its
// verdicts give the precision to report, and no learning round starts. A third mode offers answers to look at again:
// the label's reviewed windows farthest from their verdicts out of fold (POST /api/review/again), each with its
// verdict and the head's score; a new verdict is the window's from then on. Above the card, the model the view reviews
// with: the store's network and each learned label's model, threshold and expected precision (GET /api/review/model).
// Reads and writes /api/review/* with the tab's token (app.js's api()).
"use strict";

const review = { label: "", mode: "learn", queue: [], at: 0, round: 10, skipped: new Set(), urls: [],
                 chain: Promise.resolve() };

async function reviewJson(path, options = {}) {
  const answer = await api(path, options);
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(body.error || `the server answered ${answer.status}`);
  return body;
}

function reviewStatus(text, isError = false) {
  $("review-status").textContent = text;
  $("review-status").classList.toggle("error", isError);
}

async function openReview() {
  try {
    const about = await reviewJson("/api/review");
    review.round = about.round;
    $("review-round").textContent = String(about.round);
    $("review-store").textContent = `${about.db}: ${about.windows} windows`;
    $("review-labels").replaceChildren(...about.labels.map((label) => new Option(label, label)));
  } catch (err) {
    reviewStatus(err.message, true);
  }
  await showModels();
}

// What a label's learned model expects at its threshold, in words: the precision and its interval, or why it is not
// calibrated and which reviews would calibrate it.
function expectedText(entry) {
  if (!entry.calibrated) {
    return `threshold ${entry.threshold.toFixed(3)}, not calibrated (${entry.why}); review ${entry.wanted} to ` +
      "calibrate it";
  }
  const [low, high] = entry.precision_interval;
  return `threshold ${entry.threshold.toFixed(3)}, precision ${entry.precision.toFixed(2)} (${low.toFixed(2)}–` +
    `${high.toFixed(2)}) expected${entry.reached ? "" : `, below the target ${entry.target}`}`;
}

async function showModels() {
  let about;
  try {
    about = await reviewJson("/api/review/model");
  } catch (err) {
    $("review-network").textContent = `the model could not be described: ${err.message}`;
    return;
  }
  const net = about.network;
  $("review-network").textContent = `Network ${net.name || "?"}: ${net.file}` +
    (net.digest ? ` (SHA-256 ${net.digest.slice(0, 12)}…)` : "") + "; it embedded the windows and runs an example." +
    (about.labels.length ? " Learned here:" : " No label learned here yet.");
  $("review-learned").replaceChildren(...about.labels.map((entry) => {
    const item = document.createElement("li");
    item.dataset.testid = "review-learned-label";
    item.dataset.label = entry.label;
    item.textContent = `${entry.label}: ${entry.model} (learned ${new Date(entry.learned).toLocaleString()}), ` +
      expectedText(entry);
    return item;
  }));
}

async function loadCandidates() {
  if (review.mode === "check") return loadCheck();
  if (review.mode === "again") return loadAgain();
  const k = Math.min(100, review.round + review.skipped.size);
  let body;
  try {
    body = await reviewJson(`/api/review/next?${new URLSearchParams({ label: review.label, k: String(k) })}`);
  } catch (err) {
    reviewStatus(err.message, true);
    return;
  }
  showCounts(body.counts);
  review.queue = body.candidates.filter((c) => !review.skipped.has(c.window));
  $("review-example").hidden = !body.needs_example;
  if (!review.queue.length) {
    $("review-card").hidden = true;
    reviewStatus(body.needs_example ? "" : "No window left to review for this label.");
    return;
  }
  reviewStatus("");
  await showCandidate(0);
}

// POST {label} to a mode's route: its answer, or null once the card is hidden and the error shown
async function postLabel(path) {
  try {
    return await reviewJson(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label: review.label }),
    });
  } catch (err) {
    $("review-card").hidden = true;
    reviewStatus(err.message, true);
    return null;
  }
}

// a mode's windows to review, the first shown (or what is said when there are none)
async function offer(queue, noneText) {
  review.queue = queue;
  $("review-example").hidden = true;
  if (!review.queue.length) {
    $("review-card").hidden = true;
    reviewStatus(noneText);
    return;
  }
  reviewStatus("");
  await showCandidate(0);
}

// check's random sample: its windows not reviewed yet, and what the verdicts on it say so far
async function loadCheck() {
  const body = await postLabel("/api/review/check");
  if (!body) return;
  $("review-check").hidden = false;
  $("review-check").textContent = `Check: ${body.line}`;
  await offer(body.candidates.filter((c) => !review.skipped.has(c.window)),
              "No window of check's sample left to review for this label.");
}

// answers to look at again: the reviewed windows whose out-of-fold score is farthest from their verdicts (a learn
// of the label as it is now, seconds); listed once: answered or skipped, a window is not offered again this time
async function loadAgain() {
  reviewStatus(`Learning ${review.label} from its verdicts to find the answers to look at again…`);
  const body = await postLabel("/api/review/again");
  if (!body) return;
  $("review-again").hidden = false;
  $("review-again").textContent = body.calibrated
    ? `${body.line || "No reviewed window disagrees with the head out of fold"}; the ${body.candidates.length} ` +
      "farthest from their verdicts, farthest first:"
    : `${body.label} is not calibrated (${body.why}): no out-of-fold score to compare its answers with`;
  showCounts(await reviewJson(`/api/review/counts?${new URLSearchParams({ label: review.label })}`));
  await offer(body.candidates, "No answer to look at again for this label.");
}

function scoreText(c) {
  if (c.source === "learned") return `score ${c.score.toFixed(3)} (the learned model's; window ${c.window})`;
  if (c.source === "check") {
    return `score ${c.score.toFixed(3)} (the learned model's; drawn at random for check; window ${c.window})`;
  }
  if (c.source === "again") {
    return `answered ${c.verdict}; out-of-fold score ${c.score.toFixed(3)} (a head that never saw it` +
      `${c.disagrees ? ": it would decide otherwise" : ""}; window ${c.window})`;
  }
  return `similarity ${c.score.toFixed(3)} (search by example; window ${c.window})`;
}

async function blobUrl(path) {
  const answer = await api(path);
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    throw new Error(body.error || `the server answered ${answer.status}`);
  }
  const url = URL.createObjectURL(await answer.blob());
  review.urls.push(url);
  return url;
}

async function showCandidate(at) {
  review.at = at;
  const c = review.queue[at];
  const old = review.urls;  // revoked once the new sound and picture replace them
  review.urls = [];
  $("review-card").hidden = false;
  $("review-card").dataset.window = String(c.window);
  $("review-where").textContent = `${c.file}  ${c.start.toFixed(2)}–${c.end.toFixed(2)} s`;
  $("review-score").textContent = scoreText(c);
  try {
    const [sound, picture] = await Promise.all([blobUrl(`/api/review/audio/${c.window}`),
                                                blobUrl(`/api/review/spectrogram/${c.window}`)]);
    $("review-spectrogram").src = picture;
    $("review-audio").src = sound;
    $("review-audio").play().catch(() => {});  // a browser may refuse to play before the first key or click
    reviewStatus("");
  } catch (err) {
    $("review-spectrogram").removeAttribute("src");
    $("review-audio").removeAttribute("src");
    reviewStatus(err.message, true);  // e.g. the window's audio file is missing: a verdict can still be given
  }
  old.forEach((url) => URL.revokeObjectURL(url));
}

function showCounts(counts) {
  $("review-counts").textContent =
    `${counts.label}: ${counts.yes} yes · ${counts.no} no · ${counts.unsure} unsure; ${counts.since_learn} since ` +
    `the last learning round, ${counts.to_next} to the next (a round is ${counts.round})`;
  $("review-learn").disabled = counts.yes === 0;
}

function advance() {
  if (review.at + 1 < review.queue.length) return showCandidate(review.at + 1);
  if (review.mode !== "again") return loadCandidates();
  // the list is not learned again by itself: a verdict kept would bring its window back
  $("review-card").hidden = true;
  reviewStatus(`All ${review.queue.length} answers looked at again; learn the label to learn from them as they are ` +
    "now, then Review lists them again.");
  return undefined;
}

async function giveVerdict(verdict) {
  const c = review.queue[review.at];
  if (!c || $("review-card").hidden) return;
  let body;
  try {
    body = await reviewJson("/api/review/label", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ window: c.window, label: review.label, verdict }),
    });
  } catch (err) {
    reviewStatus(err.message, true);
    return;
  }
  showCounts(body.counts);
  // a round that fails to learn (the message stays shown; the button tries again) must not hold the reviewer;
  // check's sample learns nothing: a new threshold would draw a new sample
  const learnNow = review.mode === "learn" && body.counts.to_next === 0 && body.counts.yes > 0;
  if (!(learnNow && await learnRound())) {
    await advance();
  }
}

async function learnRound() {
  reviewStatus(`Learning ${review.label} from its verdicts…`);
  $("review-learn").disabled = true;
  try {
    const summary = await reviewJson("/api/review/learn", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label: review.label }),
    });
    $("review-summary").textContent = `Learned ${summary.label} from ${summary.positives} yes and ` +
      `${summary.negatives} no: threshold ${summary.threshold.toFixed(3)}, ${summary.expected}`;
    $("review-disagreeing").hidden = !summary.again;
    $("review-disagreeing").textContent = summary.again
      ? `${summary.again} (a no at or above the threshold, a yes below it and 0.5): choose Windows "answers to look ` +
        "at again\" for a second look"
      : "";
    review.skipped.clear();
  } catch (err) {
    reviewStatus(err.message, true);
    $("review-learn").disabled = false;
    return false;
  }
  await showModels();
  await loadCandidates();
  return true;
}

async function searchExample() {
  const form = new FormData();
  form.append("label", review.label);
  form.append("k", String(review.round));
  const file = $("review-example-file").files[0];
  const windowId = $("review-example-window").value.trim();
  if (file) form.append("file", file, file.name);
  else if (windowId) form.append("window", windowId);
  else { reviewStatus("Choose an audio file or give a window id", true); return; }
  reviewStatus("Searching for windows like the example…");
  try {
    await reviewJson("/api/review/search", { method: "POST", body: form });
  } catch (err) {
    reviewStatus(err.message, true);
    return;
  }
  $("review-example").hidden = true;
  review.skipped.clear();
  await loadCandidates();
}

// One action at a time, in the order the keys were pressed: three quick keys give three verdicts to three windows.
function queueAction(action) {
  review.chain = review.chain.then(action).catch((err) => reviewStatus(err.message, true));
}

function replay() {
  const audio = $("review-audio");
  audio.currentTime = 0;
  audio.play().catch(() => {});
}

cardKeys("review", { verdict: (said) => queueAction(() => giveVerdict(said)), replay,
                     skip: () => queueAction(skip) });

function skip() {
  const c = review.queue[review.at];
  if (!c || $("review-card").hidden) return undefined;
  review.skipped.add(c.window);
  return advance();
}

$("review-start").addEventListener("submit", (event) => {
  event.preventDefault();
  review.label = $("review-label").value.trim();
  review.mode = $("review-mode").value;
  review.skipped.clear();
  $("review-summary").textContent = "";
  $("review-check").hidden = true;
  $("review-again").hidden = true;
  $("review-disagreeing").hidden = true;
  $("review-label").blur();  // the keys are the reviewer's now
  queueAction(loadCandidates);
});
$("review-example").addEventListener("submit", (event) => { event.preventDefault(); queueAction(searchExample); });
document.querySelectorAll("#review-buttons [data-verdict]").forEach((button) => button.addEventListener("click", () => {
  button.blur();
  queueAction(() => giveVerdict(button.dataset.verdict));
}));
$("review-replay").addEventListener("click", (event) => { event.currentTarget.blur(); replay(); });
$("review-skip").addEventListener("click", (event) => { event.currentTarget.blur(); queueAction(skip); });
$("review-learn").addEventListener("click", (event) => { event.currentTarget.blur(); queueAction(learnRound); });
// the server shows the tab when it serves an embeddings store (a server of a model has no /api/review)
if (!$("tab-review").hidden) {
  document.addEventListener("envsound-token", openReview);
  openReview();
}
