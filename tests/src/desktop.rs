//! The real app under test: launching it, its tray on D-Bus, and WebDriver.
