// The periodic task form of the admin (django-celery-beat): shows a crontab in words
// below the field. django-celery-beat's inline script, as a file.
(function ($) {
  const readableCrontabs = JSON.parse($("#readable-crontabs").text());
  const originalHelp = JSON.parse($("#crontab-help").text());
  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    const help = $(".field-crontab .help");
    help.text(originalHelp);
    help.append($("<br>"), document.createTextNode(
      "Translation: " + readableCrontabs[$("#id_crontab").val()]));
  });
})(django.jQuery);
