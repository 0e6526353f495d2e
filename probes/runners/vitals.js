// Parcours in-page helper, added to every document of a run before the site's own scripts.
// It only reads: navigation timing, first contentful paint and slow interactions, and
// reports each as soon as it is known through a CDP binding, so that nothing is lost
// when a click navigates away. LCP and layout shifts come from CDP's PerformanceTimeline.
(() => {
  if (window.__parcours) { return; }
  const origin = performance.timeOrigin;
  const report = (kind, data) => {
    try { window.__parcoursReport(JSON.stringify({ kind, origin, url: location.href, ...data })); } catch (e) { /* page closing */ }
  };
  const observe = (type, options, onEntry) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach(onEntry))
        .observe({ type, buffered: true, ...options });
      return true;
    } catch (error) { return false; }
  };

  observe("paint", {}, (entry) => {
    if (entry.name === "first-contentful-paint") { report("fcp", { value: entry.startTime }); }
  });
  const hasEventTiming = observe("event", { durationThreshold: 16 }, (entry) => {
    if (entry.interactionId) {
      report("interaction", { start: entry.startTime, duration: entry.duration });
    }
  });
  const navigation = () => {
    const nav = performance.getEntriesByType("navigation")[0];
    return nav ? { ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd,
                   load: nav.loadEventEnd, hasEventTiming } : { hasEventTiming };
  };
  addEventListener("load", () => setTimeout(() => report("navigation", navigation()), 0));

  // Called once at the end of a run: let the last page paint so its entries are reported.
  // The paint observer's callback is a task of its own that a loaded machine runs late, so
  // FCP is also read from the timeline here; a page with content paints within a few
  // frames, one without any (a blank page) is given ten.
  const firstPaint = () => {
    const entry = performance.getEntriesByName("first-contentful-paint")[0];
    return entry ? entry.startTime : null;
  };
  const settle = () => new Promise((resolve) => {
    let frames = 0;
    const next = () => requestAnimationFrame(() => setTimeout(() => {
      frames += 1;
      const painted = firstPaint();
      if (painted === null && frames < 10) { next(); return; }
      if (painted !== null) { report("fcp", { value: painted }); }
      report("navigation", navigation());
      resolve(true);
    }, 0));
    next();
  });
  Object.defineProperty(window, "__parcours", { value: { settle }, enumerable: false });
})();
