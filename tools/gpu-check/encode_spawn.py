"""encode_faces.py with its worker processes spawned instead of forked: python .gpu/encode_spawn.py ARGS...

On Linux the pipeline forks its workers after the parent has loaded the models; a dlib built with
CUDA puts the CNN's weights on the GPU as it loads them (cudaMalloc), and CUDA cannot be used in a
child forked after its parent initialised it.  This runs the same script with spawned workers (as
the pipeline already does off Linux), each loading the models itself, to see whether that is the
whole difference.  The check only; the project is not changed.
"""
import runpy
import sys

if __name__ == "__main__":  # spawned children import this file as __mp_main__: nothing to do there
    sys.path.insert(0, ".")
    import facecluster.run.pool as pool

    pool.start_method = lambda: "spawn"  # the one place the pool asks how to start its workers
    sys.argv = ["encode_faces.py", *sys.argv[1:]]
    runpy.run_path("encode_faces.py", run_name="__main__")
