/*
 * Nothing destructive by accident: a form (or a submit button) with data-confirm asks first, in a
 * dialog that says what will happen. "Yes" submits with confirmed=yes; "No" or Escape sends nothing.
 * Without this script the server asks instead, on a second page (bot/console/confirm.py).
 */
(function () {
  "use strict";

  function ask(question, yes, onYes) {
    var dialog = document.createElement("dialog");
    dialog.className = "confirm";
    dialog.setAttribute("aria-labelledby", "confirm-question");
    var text = document.createElement("p");
    text.id = "confirm-question";
    text.textContent = question;
    var ok = document.createElement("button");
    ok.type = "button";
    ok.className = "danger";
    ok.textContent = yes || "Yes, go ahead";
    var no = document.createElement("button");
    no.type = "button";
    no.className = "secondary";
    no.textContent = "No, go back";
    var buttons = document.createElement("div");
    buttons.className = "confirm-buttons";
    buttons.append(ok, no);
    dialog.append(text, buttons);
    document.body.appendChild(dialog);
    ok.addEventListener("click", function () { dialog.close("yes"); });
    no.addEventListener("click", function () { dialog.close("no"); });
    dialog.addEventListener("close", function () {
      var answer = dialog.returnValue;
      dialog.remove();
      if (answer === "yes") onYes();
    });
    dialog.showModal();
    no.focus();  // the safe answer is the default
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || form.dataset.confirm;
    if (!question || form.dataset.confirmed === "yes") return;
    event.preventDefault();
    event.stopImmediatePropagation();
    ask(question, (button && button.dataset.confirmYes) || form.dataset.confirmYes, function () {
      form.dataset.confirmed = "yes";
      var flag = document.createElement("input");
      flag.type = "hidden";
      flag.name = "confirmed";
      flag.value = "yes";
      form.appendChild(flag);
      if (button && button.name) {  // form.submit() would drop which button was pressed
        var which = document.createElement("input");
        which.type = "hidden";
        which.name = button.name;
        which.value = button.value;
        form.appendChild(which);
      }
      form.submit();
    });
  }, true);
})();
