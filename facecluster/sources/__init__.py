"""What yields pictures to look at: a folder's photos and videos found by content (folder), photos decoded (images), video frames (video), and why a file is passed over (skips)."""
