// Progressive enhancement only: every page and form works without this file.
"use strict";

// Warn about an oversized photo before uploading it; the server enforces the limit anyway.
function checkPhotoSizes() {
  for (const input of document.querySelectorAll("input[type=file][data-max-bytes]")) {
    input.addEventListener("change", () => {
      const max = Number(input.dataset.maxBytes);
      const file = input.files && input.files[0];
      const tooBig = file && file.size > max;
      input.setCustomValidity(tooBig ? `This photo is too big: the limit is ${(max / 1048576).toFixed(0)} MiB.` : "");
      if (tooBig) input.reportValidity();
    });
  }
}

// Times are rendered in UTC by the server; show them in the reader's time zone, with the exact
// time (and zone) on hover.
function localiseTimes() {
  const shown = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  for (const time of document.querySelectorAll("time[datetime]")) {
    const date = new Date(time.dateTime);
    if (Number.isNaN(date.getTime())) continue;
    time.textContent = shown.format(date);
    time.title = exact.format(date);
  }
}

// Review photos open in a modal <dialog> instead of a bare image in a new tab. Esc closes it
// (the browser's own handling of a modal dialog), as do the close button and a click beside the
// photo; focus goes back to the thumbnail that opened it.
function photoViewer() {
  let opener = null;
  for (const link of document.querySelectorAll("a[data-photo-viewer]")) {
    const dialog = document.getElementById(link.dataset.photoViewer);
    if (!dialog || typeof dialog.showModal !== "function") continue;
    link.addEventListener("click", (event) => {
      // Let a middle click or Ctrl/Cmd-click open the photo in a tab as before.
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      const thumbnail = link.querySelector("img");
      const image = document.createElement("img");
      image.className = "photo-viewer-image";
      image.src = link.href;
      image.alt = thumbnail ? thumbnail.alt : "Review photo";
      dialog.querySelector(".photo-viewer-frame").replaceChildren(image);
      dialog.querySelector(".photo-viewer-caption").textContent = image.alt;
      dialog.setAttribute("aria-label", image.alt);
      opener = link;
      dialog.showModal();
    });
  }
  for (const dialog of document.querySelectorAll("dialog.photo-viewer")) {
    dialog.addEventListener("click", (event) => {
      // The dialog element itself is the backdrop area around the photo.
      if (event.target === dialog || event.target.closest("[data-close]")) dialog.close();
    });
    dialog.addEventListener("close", () => {
      if (opener) opener.focus();
      opener = null;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  checkPhotoSizes();
  localiseTimes();
  photoViewer();
});
