// A third party's chat widget, served from another site than the shop's: it throws, as
// real ones do. The shop still works; this is someone else's bug.
(function () {
  const bubble = document.createElement("div");
  bubble.className = "chat-bubble";
  bubble.textContent = "Chat";
  document.body.appendChild(bubble);
  throw new Error("chat widget: session quota exceeded");
})();
