// ngshare pages: the little that needs a script. Everything works without it.
"use strict";

// Forms with data-confirm ask before they submit (removals).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A filter box above long tables: hides rows whose text does not contain the query.
const FILTER_FROM_ROWS = 8;
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const table = document.getElementById(input.dataset.filter);
    if (!table || table.tBodies[0].rows.length < FILTER_FROM_ROWS) continue;
    input.closest(".filter").hidden = false;
    input.addEventListener("input", () => {
      const query = input.value.trim().toLowerCase();
      for (const row of table.tBodies[0].rows) {
        row.hidden = query !== "" && !row.textContent.toLowerCase().includes(query);
      }
    });
  }
});
