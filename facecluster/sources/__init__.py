"""What yields pictures to look at: video frames (photos are still read by ``facecluster.images``)."""
