import sys
from pathlib import Path

# the spawned ranks import the worker module by name: make its folder importable in every process
sys.path.insert(0, str(Path(__file__).parent))
