// The call's tiles. One remote member fills the stage; more make a grid.
// The self-view is a mirrored picture in picture, moved to another corner
// by dragging it or with its move button. A member without a picture shows
// a name card.
import { $, state } from "./callstate.js";
import { t } from "./i18n.js";

const corners = ["br", "bl", "tl", "tr"];

// The media server forwards each camera at the size its tile shows.
const tileSizes = new ResizeObserver((entries) => {
  for (const e of entries) {
    const id = e.target.closest("figure")?.dataset.member;
    if (id) state.sfu?.view(id, e.contentRect.width, e.contentRect.height);
  }
});

function tileOf(id) {
  return document.querySelector(`figure[data-member="${CSS.escape(id)}"]`);
}

export function tile(id, name, stream, self) {
  let fig = tileOf(id);
  if (!fig) {
    fig = newTile(id, self);
    $("tiles").append(fig);
    if (!self) tileSizes.observe(fig.querySelector("video"));
  }
  fig.querySelector(".name").textContent = name;
  fig.querySelector(".initials").textContent = initialsOf(name);
  const video = fig.querySelector("video");
  if (stream && video.srcObject !== stream) {
    video.srcObject = stream;
    if (!self) watchTracks(fig, stream);
  }
  pictureChanged(fig);
  layoutTiles();
  return fig;
}

function newTile(id, self) {
  const fig = document.createElement("figure");
  fig.className = "tile no-video" + (self ? " self" : "");
  fig.dataset.member = id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = !!self;
  video.addEventListener("resize", () => pictureChanged(fig));
  video.addEventListener("loadeddata", () => pictureChanged(fig));
  const card = document.createElement("div");
  card.className = "name-card";
  card.setAttribute("aria-hidden", "true");
  const initials = document.createElement("span");
  initials.className = "initials";
  card.append(initials);
  const cap = document.createElement("figcaption");
  const label = document.createElement("span");
  label.className = "name";
  const marks = document.createElement("span");
  marks.className = "marks";
  cap.append(label, marks);
  fig.append(video, card, cap);
  if (self) selfView(fig);
  return fig;
}

function initialsOf(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join("");
}

// pictureChanged shows the name card while a tile has no picture: no
// stream yet, no video track, or the member turned the camera off.
function pictureChanged(fig) {
  const video = fig.querySelector("video");
  const stream = video.srcObject;
  const hasTrack = !!stream && stream.getVideoTracks().some((t) => t.readyState === "live" && (!fig.classList.contains("self") || t.enabled));
  const off = fig.dataset.video === "off";
  fig.classList.toggle("no-video", off || !hasTrack || (!fig.classList.contains("self") && video.videoWidth === 0));
}

// watchTracks keeps a remote tile's name card in step with its stream: a
// member who starts or stops sharing a screen without a camera adds or
// removes the stream's video track.
function watchTracks(fig, stream) {
  const changed = () => {
    if (fig.querySelector("video").srcObject === stream) pictureChanged(fig);
  };
  const watch = (track) => track.addEventListener("ended", changed);
  stream.getTracks().forEach(watch);
  stream.addEventListener("addtrack", ({ track }) => { watch(track); changed(); });
  stream.addEventListener("removetrack", changed);
}

// markTile shows a member's microphone and camera state on the tile.
export function markTile(fig, m) {
  fig.dataset.video = m.video === false ? "off" : "on";
  const marks = [];
  if (m.audio === false) marks.push(t("js.call.marks.muted"));
  if (m.video === false) marks.push(t("js.call.marks.camera.off"));
  fig.querySelector(".marks").textContent = marks.length ? `· ${marks.join(", ")}` : "";
  pictureChanged(fig);
}

// markSelf shows the tab's own microphone and camera state.
export function markSelf(m) {
  const self = document.querySelector("figure.tile.self");
  if (self) markTile(self, m);
}

export function layoutTiles() {
  const remote = document.querySelectorAll("figure.tile:not(.self)").length;
  $("tiles").dataset.remote = remote > 6 ? "many" : String(remote);
  $("alone").hidden = remote > 0;
}

function selfView(fig) {
  fig.dataset.corner = "br";
  const move = (corner) => { fig.dataset.corner = corner; };
  const next = () => move(corners[(corners.indexOf(fig.dataset.corner) + 1) % corners.length]);
  const mover = document.createElement("button");
  mover.type = "button";
  mover.className = "move-self";
  mover.setAttribute("aria-label", t("js.call.move.self"));
  mover.textContent = "⤡";
  mover.addEventListener("click", (e) => { e.stopPropagation(); next(); });
  mover.addEventListener("pointerdown", (e) => e.stopPropagation());
  fig.append(mover);
  let start = null;
  fig.addEventListener("pointerdown", (e) => {
    start = { x: e.clientX, y: e.clientY };
    fig.setPointerCapture(e.pointerId);
  });
  fig.addEventListener("pointerup", (e) => {
    if (!start) return;
    const moved = Math.abs(e.clientX - start.x) + Math.abs(e.clientY - start.y) > 10;
    start = null;
    const stage = $("stage").getBoundingClientRect();
    if (!moved) return next();
    const right = e.clientX > stage.left + stage.width / 2;
    const bottom = e.clientY > stage.top + stage.height / 2;
    move((bottom ? "b" : "t") + (right ? "r" : "l"));
  });
}

// setSelfId names the self-view after the id the server gave this tab.
export function setSelfId(id) {
  const self = document.querySelector("figure.self");
  if (self) self.dataset.member = id;
}

// remoteTileIds lists the members that have a tile.
export function remoteTileIds() {
  return [...document.querySelectorAll("figure.tile:not(.self)")].map((fig) => fig.dataset.member);
}

// viewAll reports every remote tile's size to the media server, 0x0 while
// the page is hidden.
export function viewAll(hidden) {
  for (const fig of document.querySelectorAll("figure.tile:not(.self)")) {
    const video = fig.querySelector("video");
    state.sfu?.view(fig.dataset.member, hidden ? 0 : video.clientWidth, hidden ? 0 : video.clientHeight);
  }
}

// viewOne reports a member's tile size to the media server.
export function viewOne(id) {
  const video = tileOf(id)?.querySelector("video");
  if (video) state.sfu?.view(id, video.clientWidth, video.clientHeight);
}

export function removeTile(id) {
  tileOf(id)?.remove();
  layoutTiles();
}
