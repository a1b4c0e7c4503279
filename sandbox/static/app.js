// The sandbox's chat page: a chat with the bot through the local Bot API server's JSON API
// (see sandbox/web.py). Plain browser JavaScript, no build step, no network beyond this server.
"use strict";

// The run's secret comes in the page's address (`make run` prints it); every API call carries it.
const SECRET = new URLSearchParams(location.search).get("secret") || "";
const state = { session: null, userId: null, chatId: null, version: -1, poll: null, rendered: new Map() };
const $ = (id) => document.getElementById(id);

async function api(path, body, signal) {
  const headers = { "X-Sandbox-Secret": SECRET };
  const options = body === undefined ? { signal, headers } : {
    method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function showError(text) { $("error").textContent = text || ""; }

let toastTimer = null;
function toast(text, alertLike) {
  const box = $("toast");
  box.textContent = text;
  box.className = alertLike ? "alert" : "";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, alertLike ? 6000 : 3500);
}

// --- who and where ------------------------------------------------------------------------
function radio(group, value, labelHtml, checked, onChange) {
  const label = document.createElement("label");
  const input = document.createElement("input");
  input.type = "radio"; input.name = group; input.value = value; input.checked = checked;
  input.addEventListener("change", onChange);
  label.append(input, " ");
  const span = document.createElement("span");
  span.innerHTML = labelHtml;
  label.append(span);
  return label;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function person(userId) { return state.session.people.find((p) => p.user_id === userId); }

function renderSwitchers() {
  const people = $("people");
  people.querySelectorAll("label").forEach((l) => l.remove());
  for (const p of state.session.people) {
    const html = `${escapeHtml(p.first_name)} — ${escapeHtml(p.role)} <span class="id">(id ${p.user_id})</span>`;
    const label = radio("person", p.user_id, html, p.user_id === state.userId, () => switchTo(p.user_id, null));
    label.dataset.role = p.key;
    people.append(label);
  }
  const chats = $("chats");
  chats.querySelectorAll("label").forEach((l) => l.remove());
  const bot = state.session.bot, group = state.session.group;
  const privateLabel = radio("chat", "private", `Private chat with @${escapeHtml(bot.username)}`,
    state.chatId > 0, () => switchTo(state.userId, state.userId));
  privateLabel.dataset.chat = "private";
  const groupLabel = radio("chat", "group", `${escapeHtml(group.title)} <span class="id">(id ${group.chat_id})</span>`,
    state.chatId === group.chat_id, () => switchTo(state.userId, group.chat_id));
  groupLabel.dataset.chat = "group";
  chats.append(privateLabel, groupLabel);
}

function switchTo(userId, chatId) {
  const wasGroup = state.chatId !== null && state.chatId < 0;
  state.userId = userId;
  state.chatId = chatId !== null ? chatId : (wasGroup ? state.session.group.chat_id : userId);
  state.version = -1;
  state.rendered.clear();
  $("messages").replaceChildren();
  renderSwitchers();
  const p = person(state.userId);
  $("chat-title").textContent = state.chatId > 0
    ? `${p.first_name}'s private chat with @${state.session.bot.username}`
    : `${state.session.group.title}, as ${p.first_name}`;
  restartPolling();
}

// --- the chat -------------------------------------------------------------------------------
const TAGS = { bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre",
               spoiler: "span", text_link: "a", blockquote: "blockquote" };

// The link schemes Telegram accepts. The server refuses others; a link that still carries one
// (javascript:, data:...) is shown as plain text, never as something to click.
const LINK_SCHEMES = new Set(["http:", "https:", "tg:"]);
function safeLink(url) {
  try {
    const parsed = new URL(url);  // parsed as the browser would follow it (tabs, case, spaces)
    return LINK_SCHEMES.has(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

// Telegram entities are offsets in UTF-16 code units, which is what JavaScript strings index.
function renderEntities(text, entities) {
  const fragment = document.createDocumentFragment();
  const cuts = new Set([0, text.length]);
  for (const e of entities || []) { cuts.add(e.offset); cuts.add(e.offset + e.length); }
  const points = [...cuts].filter((n) => n >= 0 && n <= text.length).sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    const [start, end] = [points[i], points[i + 1]];
    let node = document.createTextNode(text.slice(start, end));
    for (const e of entities || []) {
      const tag = TAGS[e.type];
      if (!tag || e.offset > start || e.offset + e.length < end) continue;
      const href = e.type === "text_link" ? safeLink(e.url) : null;
      const wrapper = document.createElement(e.type === "text_link" && !href ? "span" : tag);
      if (href) { wrapper.href = href; wrapper.rel = "noopener noreferrer"; }
      else if (e.type === "text_link") { wrapper.className = "refused-link"; wrapper.title = "not a link: only http, https and tg links are shown"; }
      wrapper.append(node);
      node = wrapper;
    }
    fragment.append(node);
  }
  return fragment;
}

function messageNode(m) {
  const li = document.createElement("li");
  li.className = `msg ${m.from_bot ? "bot" : ""} ${m.from.id === state.userId ? "mine" : ""}`;
  li.dataset.messageId = m.message_id;
  const sender = document.createElement("div");
  sender.className = "sender";
  sender.textContent = m.from_bot ? m.from.first_name : `${m.from.first_name} (id ${m.from.id})`;
  li.append(sender);
  if (m.photo) {
    const img = document.createElement("img");
    img.src = `${m.photo}?secret=${encodeURIComponent(SECRET)}`;
    img.alt = m.caption ? `Image: ${m.caption}` : "Image sent by the bot";
    li.append(img);
  }
  const text = m.text !== null ? m.text : m.caption;
  if (text) {
    const body = document.createElement("div");
    body.className = "body";
    body.append(renderEntities(text, m.text !== null ? m.entities : []));
    li.append(body);
  }
  if (m.edits) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = `edited ×${m.edits}`;
    li.append(edited);
  }
  if (m.buttons.length) {
    const keyboard = document.createElement("div");
    keyboard.className = "keyboard";
    keyboard.setAttribute("role", "group");
    keyboard.setAttribute("aria-label", `Buttons of message ${m.message_id}`);
    for (const row of m.buttons) {
      const rowNode = document.createElement("div");
      rowNode.className = "row";
      for (const b of row) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = b.text;
        button.dataset.label = b.text;
        const href = b.url ? safeLink(b.url) : null;
        if (href) button.addEventListener("click", () => window.open(href, "_blank", "noopener,noreferrer"));
        else if (b.url) { button.disabled = true; button.title = "not a link: only http, https and tg links open"; }
        else button.addEventListener("click", () => press(m.message_id, b.data));
        rowNode.append(button);
      }
      keyboard.append(rowNode);
    }
    li.append(keyboard);
  }
  return li;
}

function renderMessages(messages) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  for (const m of messages) {
    const key = JSON.stringify(m);
    const old = list.querySelector(`li[data-message-id="${m.message_id}"]`);
    if (old && state.rendered.get(m.message_id) === key) continue;
    const focused = old && old.contains(document.activeElement) ? document.activeElement.dataset.label : null;
    const node = messageNode(m);
    if (old) old.replaceWith(node); else list.append(node);
    state.rendered.set(m.message_id, key);
    if (focused) {  // an edit keeps keyboard focus on the same button when it is still there
      const again = [...node.querySelectorAll("button")].find((b) => b.dataset.label === focused);
      (again || node.querySelector("button") || $("text")).focus();
    }
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderCommands(commands) {
  const menu = $("command-menu"), list = $("command-list");
  menu.replaceChildren(); list.replaceChildren();
  for (const c of commands) {
    const li = document.createElement("li");
    li.setAttribute("role", "none");
    const item = document.createElement("button");
    item.type = "button";
    item.setAttribute("role", "menuitem");
    item.textContent = `/${c.command} — ${c.description}`;
    item.addEventListener("click", () => { closeMenu(); $("text").value = `/${c.command} `; $("text").focus(); });
    li.append(item);
    menu.append(li);
    const option = document.createElement("option");
    option.value = `/${c.command}`;
    option.label = c.description;
    list.append(option);
  }
  $("menu-button").disabled = commands.length === 0;
}

function restartPolling() {
  if (state.poll) state.poll.abort();
  const controller = new AbortController();
  state.poll = controller;
  (async () => {
    while (!controller.signal.aborted) {
      const q = `user_id=${state.userId}&chat_id=${state.chatId}&since=${state.version}`;
      try {
        const data = await api(`/api/chat?${q}`, undefined, controller.signal);
        if (controller.signal.aborted) return;
        if (data.version !== state.version) {
          state.version = data.version;
          renderMessages(data.messages);
          renderCommands(data.commands);
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        showError(`The sandbox does not answer (${error.message}); retrying.`);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if ($("error").textContent.startsWith("The sandbox does not answer")) showError("");
    }
  })();
}

// --- acting ---------------------------------------------------------------------------------
async function send(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  try {
    await api("/api/send", { user_id: state.userId, chat_id: state.chatId, text });
    $("text").value = "";
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function press(messageId, data) {
  try {
    const { query_id } = await api("/api/press", { user_id: state.userId, chat_id: state.chatId,
                                                   message_id: messageId, data });
    const answer = await api(`/api/answer?query_id=${encodeURIComponent(query_id)}`);
    if (!answer.answered) toast("The bot did not answer this press.", false);
    else if (answer.text) toast(answer.text, answer.show_alert);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

function openMenu() {
  $("command-menu").hidden = false;
  $("menu-button").setAttribute("aria-expanded", "true");
  const first = $("command-menu").querySelector("button");
  if (first) first.focus();
}

function closeMenu() {
  $("command-menu").hidden = true;
  $("menu-button").setAttribute("aria-expanded", "false");
}

function menuKeys(event) {
  const items = [...$("command-menu").querySelectorAll("button")];
  const at = items.indexOf(document.activeElement);
  if (event.key === "Escape") { closeMenu(); $("menu-button").focus(); event.preventDefault(); }
  else if (event.key === "ArrowDown") { items[(at + 1) % items.length].focus(); event.preventDefault(); }
  else if (event.key === "ArrowUp") { items[(at - 1 + items.length) % items.length].focus(); event.preventDefault(); }
}

async function main() {
  state.session = await api("/api/session");
  $("composer").addEventListener("submit", send);
  $("menu-button").addEventListener("click", () => ($("command-menu").hidden ? openMenu() : closeMenu()));
  $("command-menu").addEventListener("keydown", menuKeys);
  const first = state.session.people[0].user_id;
  switchTo(first, first);
  $("text").focus();
}

main().catch((error) => showError(`Could not start: ${error.message}`));
