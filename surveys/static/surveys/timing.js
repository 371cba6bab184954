// Progressive enhancement: records, per question, the seconds from page load to its last
// answer, for the speed index. The survey works the same without it.
(function () {
  var form = document.getElementById("survey-form");
  if (!form) return;
  var started = performance.now();
  var seconds = {};
  form.addEventListener("change", function (event) {
    var fieldset = event.target.closest("fieldset[data-item]");
    if (!fieldset) return;
    seconds[fieldset.dataset.item] = Math.round(performance.now() - started) / 1000;
    form.elements.item_seconds.value = JSON.stringify(seconds);
  });
})();
