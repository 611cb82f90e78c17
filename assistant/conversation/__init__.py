"""The conversation stage: follow-up questions rewritten to stand alone (`rewrite`), and the stored
conversations, feedback and Slack exchanges (`history`, SQLite)."""
