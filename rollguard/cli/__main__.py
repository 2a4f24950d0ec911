from rollguard.__main__ import run

run()
