// A sub-table on a row's page (a bot's keys, an alert's delivery attempts) stacks on a phone
// (admin.css); each cell gets its column's head as its label (data-label), as a list's cells do.
document.addEventListener("DOMContentLoaded", () => {
    for (const table of document.querySelectorAll(".inline-group .tabular table")) {
        const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
        for (const row of table.querySelectorAll("tbody tr")) {
            [...row.children].forEach((cell, i) => {
                if (heads[i] && !cell.classList.contains("original")) cell.dataset.label = heads[i];
            });
        }
    }
});
