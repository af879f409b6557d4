// Progressive enhancement only: the forms work without this file.
// Warn about an oversized photo before uploading it; the server enforces the limit anyway.
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-max-bytes]")) {
    input.addEventListener("change", () => {
      const max = Number(input.dataset.maxBytes);
      const file = input.files && input.files[0];
      const tooBig = file && file.size > max;
      input.setCustomValidity(tooBig ? `This photo is too big: the limit is ${(max / 1048576).toFixed(0)} MiB.` : "");
      if (tooBig) input.reportValidity();
    });
  }
});
