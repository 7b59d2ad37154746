public enum _PSystemd {}
