"""The encoding run: photos over worker processes (or a Dask cluster) and videos by segments, reusing the results kept in :mod:`facecluster.store`, and a closing report."""
