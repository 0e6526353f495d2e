"""The agent: schedules journeys, runs them, ships results, reloads its config."""
