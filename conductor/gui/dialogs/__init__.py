"""The app's dialogs: one per approval kind (plan, tickets, spawn, tool), settings, confirm-close, edit ticket."""
