"""The encoding run: photos over worker processes (or a Dask cluster) and videos by segments, with results kept between runs and a closing report."""
