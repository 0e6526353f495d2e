// A little progressive enhancement: the cart link shows a badge, buttons show progress.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button[type=submit]");
  if (button) { button.textContent = "Please wait…"; }
});
document.querySelectorAll(".cart-link").forEach((link) => {
  link.setAttribute("aria-label", "Cart");
});
document.querySelectorAll(".menu-toggle").forEach((toggle) => {
  toggle.addEventListener("click", () => {
    const nav = document.getElementById(toggle.getAttribute("aria-controls"));
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
});
