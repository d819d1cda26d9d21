"""Devices, FCM delivery, fan-out, reminders and schedules (issue 5)."""
