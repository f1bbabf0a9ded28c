// The program editor's rows (templates/vouchers/_program_rows.html): add a row from the
// formset's <template>, move rows up and down (renumbering their positions), dim a
// removed row, and show only the parameter of the rule type chosen. The page works
// without this: blank rows, position numbers and "Remove" boxes do the same.
(function () {
  "use strict";

  function rows(set) {
    return Array.prototype.slice.call(set.querySelectorAll(".row-list > .row-item"));
  }

  function renumber(set) {
    rows(set).forEach(function (row, i) {
      var order = row.querySelector("input[name$='-ORDER']");
      if (order) { order.value = String(i + 1); }
    });
  }

  function showRuleParameters(row) {
    var type = row.querySelector("select[name$='-type']:not([name$='-doc_type'])");
    if (!type) { return; }
    row.querySelectorAll("[data-rule]").forEach(function (input) {
      var label = input.closest("label");
      var relevant = input.getAttribute("data-rule") === type.value;
      if (!relevant && input.value !== "" && !label.querySelector(".error")) { input.value = ""; }
      // A field with an error stays visible, so its message is never hidden.
      label.classList.toggle("is-hidden", !relevant && !label.querySelector(".error"));
    });
  }

  // A document row's identifier field is for "another type" only.
  function showCustomType(row) {
    var kind = row.querySelector("select[name$='-doc_type']");
    var custom = row.querySelector("input[name$='-custom']");
    if (!kind || !custom) { return; }
    var label = custom.closest("label");
    var relevant = kind.value === "__custom__";
    label.classList.toggle("is-hidden", !relevant && custom.value === "" && !label.querySelector(".error"));
  }

  function wire(row, set) {
    row.querySelectorAll("button[data-move]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var list = rows(set);
        var i = list.indexOf(row);
        if (button.getAttribute("data-move") === "up" && i > 0) {
          row.parentNode.insertBefore(row, list[i - 1]);
        } else if (button.getAttribute("data-move") === "down" && i < list.length - 1) {
          row.parentNode.insertBefore(list[i + 1], row);
        }
        renumber(set);
        button.focus();
      });
    });
    var remove = row.querySelector("input[name$='-DELETE']");
    if (remove) {
      remove.addEventListener("change", function () { row.classList.toggle("removed", remove.checked); });
      row.classList.toggle("removed", remove.checked);
    }
    var kind = row.querySelector("select[name$='-doc_type']");
    if (kind) {
      kind.addEventListener("change", function () { showCustomType(row); });
      showCustomType(row);
    }
    var type = row.querySelector("select[name$='-type']:not([name$='-doc_type'])");
    if (type) {
      type.addEventListener("change", function () { showRuleParameters(row); });
      showRuleParameters(row);
    }
  }

  document.querySelectorAll("fieldset[data-formset]").forEach(function (set) {
    var prefix = set.getAttribute("data-formset");
    var total = set.querySelector("input[name='" + prefix + "-TOTAL_FORMS']");
    var most = set.querySelector("input[name='" + prefix + "-MAX_NUM_FORMS']");
    var template = set.querySelector("template");
    var add = set.querySelector("button[data-add]");
    rows(set).forEach(function (row) { wire(row, set); });
    if (!total || !template || !add) { return; }
    add.hidden = false;
    add.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      if (most && index >= parseInt(most.value, 10)) { return; }
      var holder = document.createElement("div");
      holder.innerHTML = template.innerHTML.replace(/__prefix__/g, String(index));
      var row = holder.querySelector(".row-item");
      set.querySelector(".row-list").appendChild(row);
      total.value = String(index + 1);
      wire(row, set);
      renumber(set);
      var first = row.querySelector("input, select");
      if (first) { first.focus(); }
    });
  });
})();
