from paramtool.cli import run

run()
