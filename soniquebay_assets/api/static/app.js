// The page's few behaviours: live search, "more albums", decisions through the GraphQL API, sign-in links.
"use strict";

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

async function loadGrid(url, append) {
  const grid = document.getElementById("grid");
  const response = await fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
  if (!response.ok) return;
  const html = await response.text();
  if (append) {
    grid.querySelector("button.more")?.remove();
    grid.insertAdjacentHTML("beforeend", html);
  } else {
    grid.innerHTML = html;
  }
}

function setUpSearch() {
  const input = document.getElementById("search");
  if (!input) return;
  const count = document.getElementById("album-count");
  const search = debounce(async () => {
    const q = input.value.trim();
    const params = new URLSearchParams(q ? { q } : {});
    history.replaceState(null, "", q ? `/?${params}` : "/");
    params.set("partial", "grid");
    await loadGrid(`/?${params}`, false);
    document.querySelector(".overview")?.classList.toggle("hidden", !!q);
    if (count) count.textContent = "";
  }, 220);
  input.addEventListener("input", search);
  input.form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
}

function setUpMore() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.more");
    if (button) { button.disabled = true; loadGrid(button.dataset.more, true); }
  });
}

async function graphql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || body.errors) {
    throw new Error((body.errors && body.errors[0] && body.errors[0].message) || `HTTP ${response.status}`);
  }
  return body.data;
}

function setUpDecisions() {
  const panel = document.getElementById("candidates");
  if (!panel) return;
  const albumId = Number(panel.dataset.albumId);
  const message = document.getElementById("decision-message");
  const decide = async (button, query, variables, done) => {
    panel.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    message.className = "message";
    message.textContent = "Saving…";
    try {
      const data = await graphql(query, variables);
      const album = Object.values(data)[0];
      document.getElementById("match-status").textContent = album.matchStatus;
      message.textContent = done(album);
      setTimeout(() => location.reload(), 600);
    } catch (error) {
      message.className = "message error";
      message.textContent = error.message;
      panel.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  };
  panel.addEventListener("click", (event) => {
    const accept = event.target.closest("button.accept");
    if (accept) {
      decide(accept, "mutation Accept($album: Int!, $release: String!) { acceptMatch(albumId: $album, releaseId: $release) { id matchStatus musicbrainzReleaseId } }",
        { album: albumId, release: accept.dataset.releaseId },
        (album) => `Accepted: this album is now release ${album.musicbrainzReleaseId}.`);
    }
    const reject = event.target.closest("button.reject");
    if (reject) {
      decide(reject, "mutation Reject($album: Int!) { rejectMatch(albumId: $album) { id matchStatus } }",
        { album: albumId }, () => "Rejected: automatic matching will leave this album alone.");
    }
  });
}

function setUpLogin() {
  // `/login#token=...` (the link `soniquebay serve` prints) signs in without the token ever reaching a URL
  const form = document.getElementById("login-form");
  if (!form || !location.hash.startsWith("#token=")) return;
  form.querySelector("#token").value = decodeURIComponent(location.hash.slice(7));
  history.replaceState(null, "", location.pathname + location.search);
  form.submit();
}

function setUpPlaylistMaker() {
  // "a path to": suggestions from the GraphQL track listing as the title is typed
  const input = document.getElementById("to-track");
  const list = document.getElementById("to-suggestions");
  if (input && list) {
    input.addEventListener("focus", () => { document.querySelector("input[name=make][value=path]").checked = true; });
    input.addEventListener("input", debounce(async () => {
      const text = input.value.trim();
      if (text.length < 2 || /^\d+ · /.test(text)) return;
      try {
        const data = await graphql("query($t: String!) { tracks(filter: {text: $t}, sort: TITLE, first: 8) { nodes { id title artist } } }", { t: text });
        list.replaceChildren(...data.tracks.nodes.map((t) => {
          const option = document.createElement("option");
          option.value = `${t.id} · ${t.title} — ${t.artist}`;
          return option;
        }));
      } catch (error) { /* suggestions are a convenience: typing on still works */ }
    }, 200));
  }
  const save = document.getElementById("save-playlist");
  if (save) {
    const made = document.getElementById("made-playlist");
    const message = document.getElementById("save-message");
    save.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = document.getElementById("playlist-name").value.trim();
      message.className = "message";
      message.textContent = "Saving…";
      try {
        const data = await graphql("mutation Save($name: String!, $request: PlaylistRequestInput!) { savePlaylist(name: $name, request: $request) { name m3u8Url } }",
          { name, request: JSON.parse(made.dataset.request) });
        message.innerHTML = "";
        message.append("Saved. ");
        const link = document.createElement("a");
        link.href = "/playlists";
        link.textContent = "See it with the other playlists";
        message.append(link);
      } catch (error) {
        message.className = "message error";
        message.textContent = error.message;
      }
    });
  }
}

function setUpPlaylistDeletion() {
  document.querySelectorAll(".playlist-card button.delete").forEach((button) => {
    button.addEventListener("click", async () => {
      const card = button.closest(".playlist-card");
      const message = document.getElementById("playlist-message");
      button.disabled = true;
      try {
        await graphql("mutation Delete($name: String!) { deletePlaylist(name: $name) { name filesRemoved } }",
          { name: card.dataset.playlistName });
        card.remove();
        message.className = "message";
        message.textContent = `Deleted “${card.dataset.playlistName}”.`;
      } catch (error) {
        message.className = "message error";
        message.textContent = error.message;
        button.disabled = false;
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpSearch();
  setUpMore();
  setUpDecisions();
  setUpLogin();
  setUpPlaylistMaker();
  setUpPlaylistDeletion();
});
