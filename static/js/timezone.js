// Tell Slipway the browser's time zone, so pages show times in it (see portal/timezones.py).
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("slipway_tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "slipway_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) {
    // An old browser without Intl: the server's zone is used.
  }
})();
