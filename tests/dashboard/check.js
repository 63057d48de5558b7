// Opens redstream's dashboard in Debian's headless chromium (playwright-core) and checks what
// the page shows, for tests/integration/test_dashboard.sh.
//
//   node check.js URL EXPECT.json SCREENSHOT.png
//
// EXPECT.json: {"streams": {NAME: {"length": N, "lag": N, "pending": N}}, "select": NAME,
//               "dead_letter_field": TEXT, "deadline_ms": N, "chromium": PATH}
// ("select" and "dead_letter_field" may be left out: no row is clicked then.)
//
// Waits (up to deadline_ms) until every expected stream's row shows exactly the expected
// length, lag and pending, the graph has points, and, after clicking the row of `select`, its
// dead letters table holds a row whose fields contain `dead_letter_field`. Fails at once when
// the page opens a dialog (an alert from injected markup) or logs an error. Prints what it saw
// as one JSON line; exits 0 when everything matched, 1 otherwise.
"use strict";

const {chromium} = require("playwright-core");
const fs = require("fs");

async function main() {
  const [url, expectFile, shot] = process.argv.slice(2);
  const want = JSON.parse(fs.readFileSync(expectFile, "utf8"));
  const browser = await chromium.launch({
    executablePath: want.chromium || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const problems = [];
  let seen = {};
  let ok = false;
  try {
    const page = await browser.newPage({viewport: {width: 1280, height: 900}});
    page.on("dialog", async (d) => {
      problems.push("a dialog opened: " + d.type() + " " + d.message());
      await d.dismiss();
    });
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push("console error: " + m.text());
    });
    const resp = await page.goto(url);
    if (resp.status() !== 200) throw new Error("GET " + url + ": HTTP " + resp.status());
    const deadline = Date.now() + (want.deadline_ms || 20000);
    let clicked = false;
    while (Date.now() < deadline && problems.length === 0) {
      seen = await page.evaluate(() => {
        const rows = {};
        for (const tr of document.querySelectorAll("#stream-table tbody tr")) {
          const t = (c) => tr.querySelector("td." + c).textContent;
          rows[t("name")] = {length: t("length"), lag: t("lag"), pending: t("pending"),
                             handler: t("handler"), ordering: t("ordering")};
        }
        const points = document.getElementById("chart-handled").getAttribute("points").trim();
        const dlq = [...document.querySelectorAll("#dlq-table tbody tr")].map((tr) =>
          [...tr.children].map((td) => td.textContent));
        return {
          rows,
          chart_points: points === "" ? 0 : points.split(" ").length,
          dead_letters: dlq,
          replay: document.getElementById("d-replay").textContent,
          problems: document.querySelectorAll("#problem-table tbody tr").length,
          row_count: document.querySelectorAll("#stream-table tbody tr").length,
          imgs: document.querySelectorAll("main img").length,
          redis: document.getElementById("o-redis").textContent,
        };
      });
      if (!clicked && want.select && want.select in seen.rows) {
        await page.locator("#stream-table tbody tr", {hasText: want.select}).first().click();
        clicked = true;
      }
      const rowsMatch = Object.entries(want.streams).every(([name, w]) => {
        const r = seen.rows[name];
        return r && r.length === String(w.length) && r.lag === String(w.lag) &&
          r.pending === String(w.pending);
      });
      const dlqMatch = !want.dead_letter_field || seen.dead_letters.some((cells) =>
        cells.some((c) => c.includes(want.dead_letter_field)));
      if (rowsMatch && seen.chart_points > 0 && dlqMatch && seen.imgs === 0) {
        ok = true;
        break;
      }
      await page.waitForTimeout(250);
    }
    await page.screenshot({path: shot, fullPage: true});
    // A phone's width: the page must not need horizontal scrolling of the whole body.
    await page.setViewportSize({width: 390, height: 844});
    seen.phone_overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth > window.innerWidth + 1);
    await page.screenshot({path: shot.replace(/\.png$/, "-phone.png"), fullPage: true});
    if (seen.phone_overflow) problems.push("the page is wider than a phone's screen");
  } finally {
    await browser.close();
  }
  seen.problems_seen = problems;
  console.log(JSON.stringify(seen));
  process.exit(ok && problems.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error("check.js: " + (e && e.stack ? e.stack : e));
  process.exit(2);
});
