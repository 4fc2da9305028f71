"""axe-core 4.14.1 (Deque Systems, MPL-2.0; axe.min.js unchanged from the npm package `axe-core`),
kept in the project so that the accessibility checks run without fetching anything."""
