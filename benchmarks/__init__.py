''' Benchmarks of bokehsync against bokeh.client (issue 4); run ``python benchmarks/run.py``. '''
