public enum _PEventLoop {}
