"""Phase retrieval (issue: iterative engine, neural first guess, PyNX adapter, data preparation).

Nothing is exported yet; the simulator and CXI files it builds on are in :mod:`braggscope.simulate`
and :mod:`braggscope.io`.
"""
__all__: list[str] = []
