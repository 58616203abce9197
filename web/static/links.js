// Copy buttons for consult links: copies the link next to the button and
// says so to screen readers.
import { t } from "./i18n.js";

for (const button of document.querySelectorAll("button.copy")) {
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select(); // the user can copy it by hand
      return;
    }
    const before = button.textContent;
    button.textContent = t("js.links.copied");
    setTimeout(() => { button.textContent = before; }, 2000);
  });
}
