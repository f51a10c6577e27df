"""The live dashboard served at `/` of `Metrics.Listen` (issue 15 item 1): one self-contained page.

Everything is in this one document (no CDN, no external file): the page polls `/status` twice a
second and redraws every VS with its pairs. Data goes into the DOM only as text (`textContent`),
never as HTML, so a tag or a check cause cannot inject markup. Read-only: the page only GETs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvswm.cluster.keys import describe_event

if TYPE_CHECKING:
    from ipvswm.cluster.adapter import ClusterStore

POLL_MS = 500  # "within a second of a change": two polls a second, each a cheap JSON document

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipvswm dashboard</title>
<style>
:root { --ok:#1b873f; --ramp:#b7791f; --await:#2b6cb0; --off:#c53030; --bg:#f7f7f8; --fg:#1a1a1a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.35 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { padding:8px 12px; background:#222; color:#eee; display:flex; flex-wrap:wrap;
  gap:4px 16px; }
header b { color:#fff; } #stale { color:#ffb4b4; font-weight:bold; }
main { padding:8px; display:grid; gap:10px; }
section.vs { background:#fff; border:1px solid #ddd; border-radius:6px; overflow:hidden; }
section.vs h2 { font-size:15px; margin:0; padding:6px 10px; background:#eef; display:flex;
  flex-wrap:wrap; gap:4px 12px; align-items:baseline; }
section.vs h2 .addr { font-weight:normal; color:#555; font-family:monospace; }
.sorry { padding:1px 6px; border-radius:4px; font-size:12px; font-weight:normal; }
.sorry.on { background:var(--off); color:#fff; } .sorry.off { background:#e2e2e2; color:#555; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:4px 8px; border-top:1px solid #eee; vertical-align:middle; }
th { font-size:12px; color:#666; font-weight:600; }
td.host small { color:#666; font-family:monospace; }
.phase { display:inline-block; padding:1px 6px; border-radius:4px; color:#fff; font-size:12px; }
.phase.ENABLED { background:var(--ok); } .phase.RAMPING { background:var(--ramp); }
.phase.AWAIT_PASS { background:var(--await); } .phase.DISABLED { background:var(--off); }
.phase.DRAINING { background:#805ad5; } .phase.FAILING_KEPT { background:#c05621; }
tr.DISABLED td { background:#fff5f5; }
.bar { position:relative; height:14px; min-width:90px; background:#eee; border-radius:3px; }
.bar .desired { position:absolute; left:0; top:0; bottom:0; background:#9ae6b4; border-radius:3px; }
.bar .kernel { position:absolute; left:0; top:9px; bottom:0; background:#276749; }
.w { font-family:monospace; font-size:12px; color:#444; }
.check.pass { color:var(--ok); } .check.fail { color:var(--off); font-weight:bold; }
.check.unknown, .check.none { color:#777; }
.progress { height:4px; background:#eee; margin-top:2px; } .progress i { display:block; height:4px;
  background:var(--ramp); }
#cluster { margin:8px 8px 0; padding:6px 10px; background:#fff; border:1px solid #ddd;
  border-radius:6px; display:flex; flex-wrap:wrap; gap:4px 12px; align-items:baseline; }
#cluster[hidden] { display:none; }
.member { padding:1px 6px; border-radius:4px; font-size:12px; color:#fff; }
.member.connected { background:var(--ok); } .member.disconnected { background:var(--off); }
.member.unknown { background:#777; }
.store.down { color:var(--off); font-weight:bold; } .peer { color:#444; }
.localonly { color:var(--ramp); }
@media (max-width: 640px) {
  thead { display:none; } tr { display:block; border-top:1px solid #ddd; padding:4px 0; }
  td { display:flex; justify-content:space-between; gap:8px; border:0; padding:2px 10px; }
  td::before { content:attr(data-label); color:#666; font-size:12px; }
  .bar { flex:1; max-width:60%; }
}
</style></head>
<body>
<header><span><b>ipvswm</b> <span id="version"></span></span><span id="daemon"></span>
<span id="updated">loading…</span><span id="stale"></span>
<span><a style="color:#9cf" href="/status">/status</a> · <a style="color:#9cf"
href="/metrics">/metrics</a></span></header>
<section id="cluster" hidden></section>
<main id="services"></main>
<script>
"use strict";
const POLL_MS = __POLL_MS__;
const COLUMNS = ["host", "phase", "weight", "reasons", "override", "ramp", "check", "conns"];
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function cell(label, cls) { const td = el("td", cls); td.dataset.label = label; return td; }
function pairRow(p, max, now) {
  const tr = el("tr", p.phase);
  tr.dataset.host = p.host; tr.dataset.phase = p.phase; tr.dataset.check = p.check;
  tr.dataset.kernel = p.kernel === null ? "" : String(p.kernel);
  let td = cell("host", "host"); td.append(el("b", "", p.host), " ");
  td.append(el("small", "", p.address + ":" + p.port)); tr.append(td);
  td = cell("phase"); td.append(el("span", "phase " + p.phase, p.phase)); tr.append(td);
  td = cell("weight"); const wrap = el("div");
  const bar = el("div", "bar"); bar.title = "desired (light) and kernel (dark)";
  const d = el("div", "desired"); d.style.width = (100 * p.desired / max) + "%";
  const k = el("div", "kernel"); k.style.width = (100 * (p.kernel || 0) / max) + "%";
  bar.append(d, k); wrap.append(bar);
  const kern = p.kernel === null ? "absent" : p.kernel;
  wrap.append(el("div", "w", "desired " + p.desired + " · kernel " + kern + " · of " +
    (p.override === null ? p.configured : p.override)));
  td.append(wrap); tr.append(td);
  tr.append(Object.assign(cell("reasons"), {textContent: p.reasons.join(", ") || "-"}));
  tr.append(Object.assign(cell("override"),
    {textContent: p.override === null ? "-" : p.override}));
  td = cell("ramp");
  if (p.ramp_deadline !== null && p.ramp_duration) {
    const done = Math.max(0, Math.min(1, 1 - (p.ramp_deadline - now) / p.ramp_duration));
    td.append(el("span", "", Math.round(100 * done) + "% of " + p.ramp_duration + " s"));
    const bar2 = el("div", "progress"); const fill = el("i");
    fill.style.width = (100 * done) + "%"; bar2.append(fill); td.append(bar2);
  } else if (p.ramp_duration) { td.textContent = "pending, " + p.ramp_duration + " s"; }
  else { td.textContent = "-"; }
  tr.append(td);
  td = cell("check", "check " + p.check);
  let text = p.check;
  if (p.check_latency !== null && p.check_latency !== undefined)
    text += " " + Math.round(p.check_latency * 1000) + " ms";
  if (p.cause) text += " (" + p.cause + ")";
  td.textContent = text; tr.append(td);
  tr.append(Object.assign(cell("conns"), {textContent: p.active + " / " + p.inactive}));
  return tr;
}
function serviceCard(vs, now) {
  const section = el("section", "vs"); section.dataset.vs = vs.vs;
  const h = el("h2"); h.append(el("span", "", vs.vs), el("span", "addr", vs.service));
  const sorry = el("span", "sorry " + (vs.sorry.on ? "on" : "off"));
  if (vs.sorry.on) sorry.textContent = vs.sorry_server ? "sorry server " + vs.sorry_server +
    " IN: no real server can serve" : "no real server can serve (no sorry server configured)";
  else sorry.textContent = vs.sorry_server ? "sorry server " + vs.sorry_server + ": standby"
    : "no sorry server";
  section.dataset.sorry = vs.sorry.on ? "on" : "off";
  h.append(sorry);
  if (!vs.in_kernel) h.append(el("span", "sorry on", "not in the kernel"));
  section.append(h);
  const table = el("table"); const head = el("tr");
  for (const c of COLUMNS) head.append(el("th", "", c));
  const thead = el("thead"); thead.append(head); table.append(thead);
  const body = el("tbody");
  const max = Math.max(1, ...vs.pairs.map(p => Math.max(p.configured, p.desired, p.kernel || 0,
    p.override || 0)));
  for (const p of vs.pairs) body.append(pairRow(p, max, now));
  table.append(body); section.append(table);
  return section;
}
function ago(now, t) {
  return t === null || t === undefined ? "" : Math.max(0, Math.round(now - t)) + " s ago";
}
function iso(t) { return new Date(t * 1000).toISOString(); }
function renderCluster(c, now) {
  const box = document.getElementById("cluster");
  if (!c) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  box.dataset.store = c.store_up ? "up" : "down";
  const parts = [el("b", "", "cluster " + c.name), el("span", "", "this director " + c.node)];
  parts.push(el("span", "store " + (c.store_up ? "up" : "down"), "store " + c.endpoint + ": " +
    c.store + " · revision " + c.revision + " · " + c.shared_keys + " shared key(s)"));
  for (const m of c.members) {
    const state = m.connected === null ? "unknown" : m.connected ? "connected" : "disconnected";
    const chip = el("span", "member " + state);
    chip.dataset.node = m.node; chip.dataset.state = state;
    let text = m.present ? "connected" + (m.since ? " since " + iso(m.since) : "")
      : "disconnected, last seen " + ago(now, m.seen);
    if (state === "unknown") text = "unknown, store unreachable (last known: " + text + ")";
    chip.textContent = m.node + (m.self ? " (this director)" : "") + ": " + text;
    parts.push(chip);
  }
  const p = c.last_peer_change;
  const peer = el("span", "peer", p ? "last change from a peer: " + p.node + ": " + p.what +
    " (" + (p.at ? "made " + iso(p.at) + ", " : "") + "learnt " + ago(now, p.learnt) + ")"
    : "no change from a peer yet");
  peer.id = "peer-change"; parts.push(peer);
  if (c.local && c.local.length)
    parts.push(el("span", "localonly", "local only (not shared): " + c.local.join(", ")));
  box.replaceChildren(...parts);
}
function render(doc) {
  const d = doc.daemon || {};
  const now = d.started !== undefined ? d.started + d.uptime : Date.now() / 1000;
  document.getElementById("version").textContent = doc.version;
  document.getElementById("daemon").textContent = (d.backend ? "backend " + d.backend + " · " : "")
    + (d.checkers !== undefined ? d.checks_passing + "/" + d.checkers + " checks passing" : "");
  document.getElementById("updated").textContent = "updated " + iso(Date.now() / 1000);
  document.getElementById("stale").textContent = "";
  renderCluster(doc.cluster, now);
  const main = document.getElementById("services");
  main.replaceChildren(...doc.services.map(vs => serviceCard(vs, now)));
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}
async function poll() {
  try {
    const response = await fetch("/status", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (err) {
    document.getElementById("stale").textContent = "daemon unreachable (" + err.message + ")";
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body></html>
""".replace("__POLL_MS__", str(POLL_MS))


def cluster_status(cluster: ClusterStore | None) -> dict[str, object] | None:
    """/status's `cluster`: `show cluster`'s view, each member marked connected or not, and the
    last admin change learnt from another director (None without `Cluster.Etcd`)."""
    if cluster is None:
        return None
    view = cluster.view()
    members = view.get("members")
    # With the store unreachable, who is connected is unknown (None): `present` is as last seen.
    view["members"] = [
        {
            **m,
            "self": m.get("node") == cluster.node,
            "connected": m["present"] if cluster.up else None,
        }
        for m in (members if isinstance(members, list) else [])
    ]
    view["store_up"] = cluster.up
    change = cluster.last_peer
    view["last_peer_change"] = (
        None
        if change is None
        else {
            "node": change.node,
            "what": describe_event(change.event),
            "at": change.at,
            "learnt": cluster.last_peer_learnt,
        }
    )
    return view
