// sambung console: a little plain JS, no framework (the daemon may run without internet).
// Pages work without it; it adds the overview's refresh, confirmations, select-all and the
// CSV upload's progress and row-error table.
(function () {
  "use strict";

  // A page marked data-refresh="N" reloads its main part every N seconds, in place.
  var every = Number(document.body.dataset.refresh || 0);
  if (every > 0) {
    setInterval(function () {
      if (document.hidden) return;
      fetch(location.href, { credentials: "same-origin" }).then(function (r) {
        if (r.redirected || !r.ok) { location.reload(); return null; }
        return r.text();
      }).then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        if (fresh) document.getElementById("main").replaceWith(fresh);
      }).catch(function () { /* the daemon restarts: try again next time */ });
    }, every * 1000);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.dataset || !box.dataset.all) return;
    box.form.querySelectorAll('input[name="' + box.dataset.all + '"]').forEach(function (b) {
      b.checked = box.checked;
    });
  });

  var upload = document.getElementById("upload");
  if (upload) upload.addEventListener("submit", function (event) {
    event.preventDefault();
    var target = upload.querySelector("#target").value.split("|");
    var data = new FormData();
    data.append("outlet", target[0]);
    data.append("source_system", target[1]);
    data.append("file", upload.querySelector("#file").files[0]);
    var progress = document.getElementById("progress");
    var result = document.getElementById("result");
    var send = document.getElementById("send");
    progress.hidden = false; progress.value = 0; send.disabled = true;
    result.textContent = "…";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", upload.action);
    xhr.setRequestHeader("X-CSRF-Token", upload.dataset.csrf);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) progress.value = Math.round(90 * e.loaded / e.total);
    };
    xhr.onload = function () {
      progress.value = 100; send.disabled = false;
      var answer;
      try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = { message: xhr.responseText, errors: [] }; }
      result.textContent = xhr.status + ": " + answer.message;
      result.className = xhr.status === 200 && answer.success ? "notice" : "bad";
      showErrors(answer.errors || []);
    };
    xhr.onerror = function () { send.disabled = false; result.textContent = "network error"; };
    xhr.send(data);
  });

  function csvCell(value) {
    var text = String(value == null ? "" : value);
    // A cell a spreadsheet would run as a formula is written as text (CSV injection).
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function showErrors(errors) {
    var card = document.getElementById("errors-card");
    var body = document.querySelector("#row-errors tbody");
    body.textContent = "";
    card.hidden = errors.length === 0;
    var lines = ["row,error,data"];
    errors.forEach(function (e) {
      var tr = document.createElement("tr");
      [e.row, e.error, JSON.stringify(e.data)].forEach(function (v) {
        var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      body.appendChild(tr);
      lines.push([e.row, e.error, JSON.stringify(e.data)].map(csvCell).join(","));
    });
    var link = document.getElementById("errors-file");
    if (link.href.indexOf("blob:") === 0) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  }
})();
