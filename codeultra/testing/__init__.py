"""Local stand-ins for what cannot exist offline (a hosted API), served over real HTTP."""
