// Progressive enhancement: moves the progress bar as this page's questions are answered. The
// server counts the answers saved on other pages (data-answered-elsewhere); without the script
// the bar shows what was saved when the page was served.
(function () {
  var form = document.getElementById("survey-form");
  var bar = document.getElementById("survey-progress");
  var count = document.getElementById("answered-count");
  if (!form || !bar || !count) return;
  var elsewhere = Number(bar.dataset.answeredElsewhere);
  function answered(fieldset) {
    return Array.prototype.some.call(fieldset.querySelectorAll("input"), function (input) {
      if (input.type === "radio" || input.type === "checkbox") return input.checked;
      return input.type !== "hidden" && input.value !== "";
    });
  }
  function update() {
    var here = Array.prototype.filter.call(form.querySelectorAll("fieldset[data-item]"), answered);
    bar.value = elsewhere + here.length;
    count.textContent = String(bar.value);
  }
  form.addEventListener("change", update);
  form.addEventListener("input", update);
})();
